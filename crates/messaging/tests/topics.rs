//! Topics as `ensure_topics` creates them, read back from a real broker: a
//! dead letter is kept until an operator deals with it, however long.

mod support;

use support::Env;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letter_topics_keep_their_letters_forever() -> anyhow::Result<()> {
    let env = Env::start().await?;
    if env.broker.mock().is_some() {
        // The mock cluster neither creates topics with configs nor
        // describes them (README, Tests): this runs on Tansu alone.
        eprintln!("skipped on the mock cluster: no CreateTopics configs, no DescribeConfigs");
        return env.stop().await;
    }
    let topics = env.kafka.topics();
    let (dead_letters, events) = (
        topics.dead_letters("inventory"),
        topics.name(choreo_events::Topic::Order),
    );
    let retention = choreo_messaging::admin::topic_retention(
        &env.kafka,
        &[dead_letters.clone(), events.clone()],
    )
    .await?;
    assert_eq!(retention[&dead_letters], Some(-1), "{retention:?}");
    // Event topics keep the broker's default: the operator's to choose.
    assert_ne!(retention[&events], Some(-1), "{retention:?}");
    env.stop().await
}
