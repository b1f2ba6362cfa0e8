//! librdkafka's mock cluster (`rdkafka::mocking`): a second, independent
//! implementation of the Kafka protocol, for the tests whose features it has.
//! It answers on a real TCP port from a thread of this process, so clients
//! in other processes reach it too.
//!
//! What it lacks, and so which tests it cannot serve: CreateTopics (topics
//! are made here, [`MockBroker::create_topics`]), ListOffsets by timestamp
//! (replays from a point in time, restore drills), and a restart on stored
//! data (the broker-kill suites).

use anyhow::Context;
use rdkafka::mocking::MockCluster;
use std::sync::mpsc;

enum Command {
    CreateTopic {
        name: String,
        partitions: i32,
        done: mpsc::Sender<Result<(), String>>,
    },
}

/// A mock cluster of one broker, alive until dropped.
pub struct MockBroker {
    pub bootstrap: String,
    // `MockCluster` cannot leave the thread that made it: the thread owns it
    // and serves these commands; dropping the sender ends the thread and
    // the cluster with it.
    commands: mpsc::Sender<Command>,
}

impl MockBroker {
    /// Starts the cluster.
    pub fn start() -> anyhow::Result<Self> {
        let (commands, inbox) = mpsc::channel::<Command>();
        let (ready, started) = mpsc::channel();
        std::thread::Builder::new()
            .name("mock kafka".into())
            .spawn(move || {
                let cluster = match MockCluster::new(1) {
                    Ok(cluster) => cluster,
                    Err(e) => {
                        let _ = ready.send(Err(e.to_string()));
                        return;
                    }
                };
                let _ = ready.send(Ok(cluster.bootstrap_servers()));
                for command in inbox {
                    match command {
                        Command::CreateTopic {
                            name,
                            partitions,
                            done,
                        } => {
                            let created = cluster
                                .create_topic(&name, partitions, 1)
                                .map_err(|e| format!("creating {name}: {e}"));
                            let _ = done.send(created);
                        }
                    }
                }
            })
            .context("starting the mock cluster's thread")?;
        let bootstrap = started
            .recv()
            .context("the mock cluster's thread ended")?
            .map_err(|e| anyhow::anyhow!("starting librdkafka's mock cluster: {e}"))?;
        Ok(Self {
            bootstrap,
            commands,
        })
    }

    /// Creates `names`, each with `partitions` partitions (the mock has no
    /// CreateTopics request). Creating an existing topic is an error.
    pub fn create_topics(&self, names: &[String], partitions: i32) -> anyhow::Result<()> {
        for name in names {
            let (done, answer) = mpsc::channel();
            self.commands
                .send(Command::CreateTopic {
                    name: name.clone(),
                    partitions,
                    done,
                })
                .map_err(|_| anyhow::anyhow!("the mock cluster is gone"))?;
            answer
                .recv()
                .context("the mock cluster is gone")?
                .map_err(anyhow::Error::msg)?;
        }
        Ok(())
    }
}
