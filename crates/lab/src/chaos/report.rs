//! What a suite run found: outcomes, faults, settle time, violations, and
//! the verdict; printed for people, written as JSON and JUnit XML for CI.

use super::suite::{DeadLetters, FaultKind, Suite};
use serde::Serialize;
use std::{collections::BTreeMap, fmt::Write as _};

/// One order's end, against what its kind allows.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct OrderVerdict {
    pub id: String,
    pub kind: &'static str,
    pub status: String,
    pub reason: Option<String>,
    /// Whether the end is one this kind of order may have.
    pub right: bool,
}

/// A fault, and when it was injected and healed (seconds from the load's start).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct FaultEvent {
    pub kind: String,
    pub target: String,
    pub injected_at: f64,
    pub healed_at: f64,
    /// The other faults that were in force at some moment of this one
    /// (`kind target`), filled in by [`SuiteReport::judge`].
    pub overlapped: Vec<String>,
}

impl FaultEvent {
    fn label(&self) -> String {
        format!("{} {}", self.kind, self.target)
    }
}

/// Marks each fault with the others whose time in force met its own: the
/// combinations a suite was written to find.
fn mark_overlaps(faults: &mut [FaultEvent]) {
    let spans: Vec<(f64, f64, String)> = faults
        .iter()
        .map(|f| (f.injected_at, f.healed_at, f.label()))
        .collect();
    for (i, fault) in faults.iter_mut().enumerate() {
        fault.overlapped = spans
            .iter()
            .enumerate()
            .filter(|(j, (from, to, _))| {
                *j != i && *from <= fault.healed_at && fault.injected_at <= *to
            })
            .map(|(_, (_, _, label))| label.clone())
            .collect();
    }
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct SuiteReport {
    pub suite: String,
    pub seed: u64,
    pub passed: bool,
    /// `status` or `status/reason` → count.
    pub outcomes: BTreeMap<String, usize>,
    pub faults: Vec<FaultEvent>,
    /// From the last heal to the last order decided.
    pub settle_seconds: f64,
    /// Each broken expectation, in words, naming the orders concerned.
    pub violations: Vec<String>,
    pub audit: choreo_audit::Report,
    /// Per service, each dead letter: where it came from and why.
    pub dead_letters: BTreeMap<String, Vec<String>>,
    /// Per saga topic, events it holds more than once (relays publishing
    /// again after a crash, the suite's duplicates): each skipped by the
    /// inboxes, as the audit shows.
    pub copies: BTreeMap<String, usize>,
    pub orders: Vec<OrderVerdict>,
}

/// What a run observed, for [`SuiteReport::judge`].
pub(crate) struct Findings {
    pub orders: Vec<OrderVerdict>,
    pub faults: Vec<FaultEvent>,
    /// Seconds from the load's start to the last heal, and to the last order
    /// decided.
    pub last_heal: f64,
    pub settled_at: f64,
    /// Consumer groups that had not read their topics to the end.
    pub lagging: Vec<String>,
    pub copies: BTreeMap<String, usize>,
    pub audit: choreo_audit::Report,
    pub dead_letters: BTreeMap<String, Vec<String>>,
    /// Per service, where each poison message it consumes lies
    /// (`topic/partition@offset`): what `expect.dead_letters = "poison"`
    /// holds its dead letters to.
    pub poison: BTreeMap<String, Vec<String>>,
}

impl SuiteReport {
    pub(crate) fn judge(suite: &Suite, findings: Findings) -> Self {
        let Findings {
            orders,
            mut faults,
            last_heal,
            settled_at,
            lagging,
            copies,
            audit,
            dead_letters,
            poison,
        } = findings;
        mark_overlaps(&mut faults);
        let mut outcomes = BTreeMap::new();
        for order in &orders {
            let key = match &order.reason {
                Some(reason) => format!("{}/{reason}", order.status),
                None => order.status.clone(),
            };
            *outcomes.entry(key).or_insert(0) += 1;
        }
        let mut violations = Vec::new();
        let undecided: Vec<&str> = orders
            .iter()
            .filter(|o| !matches!(o.status.as_str(), "CONFIRMED" | "CANCELLED"))
            .map(|o| o.id.as_str())
            .collect();
        if !undecided.is_empty() {
            violations.push(format!(
                "{} orders not decided within {} s of the last heal: {}",
                undecided.len(),
                suite.expect.settle_seconds,
                undecided.join(", ")
            ));
        }
        for order in orders
            .iter()
            .filter(|o| !o.right && !undecided.contains(&o.id.as_str()))
        {
            violations.push(format!(
                "order {} ({}) ended {}{}",
                order.id,
                order.kind,
                order.status,
                order
                    .reason
                    .as_deref()
                    .map(|r| format!("/{r}"))
                    .unwrap_or_default()
            ));
        }
        for lag in &lagging {
            violations.push(format!("consumer not caught up: {lag}"));
        }
        for (status, count) in &suite.expect.counts {
            let actual = orders.iter().filter(|o| &o.status == status).count();
            if let Ok((low, high)) = count.bounds() {
                if !(low..=high).contains(&actual) {
                    violations.push(format!("{actual} orders {status}, expected {low}..={high}"));
                }
            }
        }
        if suite.expect.audit_clean {
            for v in &audit.violations {
                violations.push(format!("audit: {v}"));
            }
        }
        let letters: usize = dead_letters.values().map(Vec::len).sum();
        match &suite.expect.dead_letters {
            Some(DeadLetters::Count(count)) => {
                if let Ok((low, high)) = count.bounds() {
                    if !(low..=high).contains(&letters) {
                        violations.push(format!("{letters} dead letters, expected {low}..={high}"));
                    }
                }
            }
            Some(DeadLetters::Poison(_)) => {
                // Copies may land; fewer than the faults sent may not.
                let sent: usize = suite
                    .faults
                    .iter()
                    .filter(|f| f.kind == FaultKind::Poison)
                    .map(|f| f.count.unwrap_or(1) * f.times)
                    .sum();
                let landed: std::collections::BTreeSet<&String> =
                    poison.values().flatten().collect();
                if landed.len() < sent {
                    violations.push(format!(
                        "{} poison messages on the topics, fewer than the {sent} the faults sent",
                        landed.len()
                    ));
                }
                violations.extend(unmatched_poison(&poison, &dead_letters));
            }
            None if suite.expect.dlq_empty => {
                for (service, letters) in &dead_letters {
                    for letter in letters {
                        violations.push(format!("dead letter for {service}: {letter}"));
                    }
                }
            }
            None => {}
        }
        Self {
            suite: suite.name.clone(),
            seed: suite.seed,
            passed: violations.is_empty(),
            outcomes,
            faults,
            settle_seconds: (settled_at - last_heal).max(0.0),
            violations,
            audit,
            dead_letters,
            copies,
            orders,
        }
    }

    /// The report for people.
    pub(crate) fn text(&self) -> String {
        let mut out = String::new();
        let verdict = if self.passed { "PASS" } else { "FAIL" };
        let _ = writeln!(out, "suite {} (seed {}): {verdict}", self.suite, self.seed);
        let _ = writeln!(out, "  orders by outcome:");
        for (outcome, count) in &self.outcomes {
            let _ = writeln!(out, "    {outcome:<40} {count}");
        }
        let _ = writeln!(out, "  faults:");
        if self.faults.is_empty() {
            let _ = writeln!(out, "    none");
        }
        for f in &self.faults {
            let _ = writeln!(
                out,
                "    {:<16} {:<32} injected at {:>6.1} s, healed at {:>6.1} s",
                f.kind, f.target, f.injected_at, f.healed_at
            );
            if !f.overlapped.is_empty() {
                let _ = writeln!(out, "      overlapping {}", f.overlapped.join(", "));
            }
        }
        let overlapping = self
            .faults
            .iter()
            .filter(|f| !f.overlapped.is_empty())
            .count();
        if overlapping > 0 {
            let _ = writeln!(
                out,
                "  {overlapping} of {} faults overlapped another",
                self.faults.len()
            );
        }
        let _ = writeln!(
            out,
            "  settled {:.1} s after the last heal",
            self.settle_seconds
        );
        let letters: usize = self.dead_letters.values().map(Vec::len).sum();
        let _ = writeln!(out, "  dead letters: {letters}");
        let copies: Vec<String> = self
            .copies
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(topic, n)| format!("{topic} {n}"))
            .collect();
        if !copies.is_empty() {
            let _ = writeln!(
                out,
                "  events on a topic more than once (skipped by the inboxes): {}",
                copies.join(", ")
            );
        }
        let _ = writeln!(
            out,
            "  audit: {} orders, {} violations",
            self.audit.orders,
            self.audit.violations.len()
        );
        for v in &self.violations {
            let _ = writeln!(out, "  VIOLATION {v}");
        }
        out
    }

    /// One JUnit test case per suite.
    pub(crate) fn junit_case(&self) -> quick_junit::TestCase {
        use quick_junit::{NonSuccessKind, TestCase, TestCaseStatus};
        let status = if self.passed {
            TestCaseStatus::success()
        } else {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
            status.set_message(format!("{} violations", self.violations.len()));
            status.set_description(self.violations.join("\n"));
            status
        };
        let mut case = TestCase::new(self.suite.clone(), status);
        case.set_system_out(self.text());
        case
    }
}

/// Each service's dead letters against the poison on its topics: a poison
/// message not dead-lettered, dead-lettered twice, or a dead letter that is
/// no poison's (`topic/partition@offset: why`), each in words.
fn unmatched_poison(
    poison: &BTreeMap<String, Vec<String>>,
    dead_letters: &BTreeMap<String, Vec<String>>,
) -> Vec<String> {
    let mut violations = Vec::new();
    let services: std::collections::BTreeSet<&String> =
        poison.keys().chain(dead_letters.keys()).collect();
    for service in services {
        // Each dead letter by where its message lay.
        let letters: Vec<(&str, &String)> = dead_letters
            .get(service)
            .into_iter()
            .flatten()
            .map(|letter| {
                let at = letter
                    .split_once(": ")
                    .map_or(letter.as_str(), |(at, _)| at);
                (at, letter)
            })
            .collect();
        let mut lettered: BTreeMap<&str, usize> = BTreeMap::new();
        for (at, _) in &letters {
            *lettered.entry(at).or_default() += 1;
        }
        let expected: std::collections::BTreeSet<&str> = poison
            .get(service)
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect();
        for at in &expected {
            match lettered.get(at) {
                None => {
                    violations.push(format!("{service} did not dead-letter the poison at {at}"))
                }
                Some(1) => {}
                Some(n) => violations.push(format!(
                    "{service} dead-lettered the poison at {at} {n} times"
                )),
            }
        }
        for (at, letter) in letters {
            if !expected.contains(at) {
                violations.push(format!(
                    "dead letter for {service} that is no poison's: {letter}"
                ));
            }
        }
    }
    violations
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(kind: &str, target: &str, injected_at: f64, healed_at: f64) -> FaultEvent {
        FaultEvent {
            kind: kind.into(),
            target: target.into(),
            injected_at,
            healed_at,
            overlapped: Vec::new(),
        }
    }

    #[test]
    fn faults_in_force_at_the_same_moment_are_marked_as_overlapping() {
        let mut faults = vec![
            fault("pause", "shipping", 2.0, 14.0),
            fault("broker-kill", "broker", 6.0, 9.0),
            // An instant fault during the pause.
            fault("duplicate", "payment.events×30", 9.5, 9.5),
            fault("kill", "order", 20.0, 22.0),
        ];
        mark_overlaps(&mut faults);
        assert_eq!(
            faults[0].overlapped,
            ["broker-kill broker", "duplicate payment.events×30"]
        );
        assert_eq!(faults[1].overlapped, ["pause shipping"]);
        assert_eq!(faults[2].overlapped, ["pause shipping"]);
        assert!(faults[3].overlapped.is_empty());
    }
}
