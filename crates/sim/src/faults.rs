//! Fault injection: the ways a real bank gateway misbehaves (slow answers, 5xx,
//! HTML notices, dropped connections, lost answers, garbage, bad MACs), chosen
//! per call from a seeded generator so a chaos run can be replayed.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::ctbc::Operation;

/// The faults a rule can inject, in the order they are tried.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// A 5xx status with an HTML page or an empty body; the call is not applied.
    #[serde(rename = "5xx")]
    ServerError,
    /// An HTML notice page with status 200; the call is not applied.
    #[serde(rename = "html_200")]
    Html200,
    /// The bank's maintenance notice as it is also served: status 200, UTF-8,
    /// the Chinese text as numeric character references; the call is not applied.
    #[serde(rename = "maintenance_200")]
    Maintenance200,
    /// The connection is closed before the call is looked at.
    #[serde(rename = "reset")]
    Reset,
    /// The call is applied, then the connection is closed without an answer.
    #[serde(rename = "apply_then_drop")]
    ApplyThenDrop,
    /// The call is applied, then a 200 with text that is no envelope comes back.
    #[serde(rename = "garbage")]
    Garbage,
    /// The call is applied, then the answer comes back with a MAC that does not match.
    #[serde(rename = "wrong_mac")]
    WrongMac,
}

impl FaultKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::ServerError => "5xx",
            FaultKind::Html200 => "html_200",
            FaultKind::Maintenance200 => "maintenance_200",
            FaultKind::Reset => "reset",
            FaultKind::ApplyThenDrop => "apply_then_drop",
            FaultKind::Garbage => "garbage",
            FaultKind::WrongMac => "wrong_mac",
        }
    }

    /// Whether the bank did the work before the fault spoiled the answer.
    pub fn applies_the_call(self) -> bool {
        matches!(
            self,
            FaultKind::ApplyThenDrop | FaultKind::Garbage | FaultKind::WrongMac
        )
    }
}

/// Faults for the calls a rule matches. Probabilities are tried in the order
/// of the fields (5xx, HTML 200, maintenance 200, reset, apply-then-drop,
/// garbage, wrong MAC);
/// the first that fires wins, so each is the chance of that fault given that
/// the ones before it did not fire.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// Operation name ("inquiry", "reversal", "capture_reversal", "refund",
    /// "refund_reversal"); none matches every operation.
    #[serde(default, with = "operation_name")]
    pub operation: Option<Operation>,
    /// Order number (`LID-M`); none matches every order.
    #[serde(default)]
    pub order_no: Option<String>,
    #[serde(default)]
    pub latency_ms: u64,
    /// Uniform extra latency from 0 to this many milliseconds.
    #[serde(default)]
    pub jitter_ms: u64,
    #[serde(default)]
    pub p_5xx: f64,
    #[serde(default)]
    pub p_html_200: f64,
    #[serde(default)]
    pub p_maintenance_200: f64,
    #[serde(default)]
    pub p_reset: f64,
    #[serde(default)]
    pub p_apply_then_drop: f64,
    #[serde(default)]
    pub p_garbage: f64,
    #[serde(default)]
    pub p_wrong_mac: f64,
    /// The page a 5xx (served as 503) or HTML-200 fault of this rule sends
    /// instead of the built-in busy page, to reproduce one notice exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<String>,
}

/// Which faults apply to which calls: the first matching rule wins.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FaultPlan {
    #[serde(default)]
    pub rules: Vec<FaultRule>,
}

/// What happens to one call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultDraw {
    pub latency: Duration,
    pub kind: Option<FaultKind>,
}

impl FaultPlan {
    /// No faults.
    pub fn none() -> Self {
        Self::default()
    }

    /// Every fault kind with the same probability on every call, for chaos runs.
    pub fn uniform(p_each: f64) -> Self {
        Self {
            rules: vec![FaultRule {
                p_5xx: p_each,
                p_html_200: p_each,
                p_maintenance_200: p_each,
                p_reset: p_each,
                p_apply_then_drop: p_each,
                p_garbage: p_each,
                p_wrong_mac: p_each,
                ..FaultRule::default()
            }],
        }
    }

    /// One fault kind, always, for one operation (or all when `None`).
    pub fn always(kind: FaultKind, operation: Option<Operation>) -> Self {
        let mut rule = FaultRule {
            operation,
            ..FaultRule::default()
        };
        *rule.probability_mut(kind) = 1.0;
        Self { rules: vec![rule] }
    }

    /// Reads a plan from JSON text, checking it.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let plan: FaultPlan =
            serde_json::from_str(text).map_err(|e| format!("fault plan is not valid: {e}"))?;
        plan.validate()?;
        Ok(plan)
    }

    /// Probabilities must lie in 0..=1.
    pub fn validate(&self) -> Result<(), String> {
        for (i, r) in self.rules.iter().enumerate() {
            for (name, p) in r.probabilities() {
                if !(0.0..=1.0).contains(&p) {
                    return Err(format!(
                        "rule {i}: {name} = {p} is not a probability (0 to 1)"
                    ));
                }
            }
        }
        Ok(())
    }

    /// The page of the rule that matches this call, if it sets one.
    pub fn page(&self, operation: Operation, order_no: &str) -> Option<&str> {
        self.rules
            .iter()
            .find(|r| r.matches(operation, order_no))
            .and_then(|r| r.page.as_deref())
    }

    /// Draws the fault for one call. `order_no` is empty when the request
    /// could not be read.
    pub fn draw(&self, operation: Operation, order_no: &str, rng: &mut StdRng) -> FaultDraw {
        let Some(rule) = self.rules.iter().find(|r| r.matches(operation, order_no)) else {
            return FaultDraw::default();
        };
        let jitter = if rule.jitter_ms > 0 {
            rng.gen_range(0..=rule.jitter_ms)
        } else {
            0
        };
        let kind = rule
            .probabilities()
            .into_iter()
            .zip(ORDER)
            .find(|((_, p), _)| *p > 0.0 && rng.gen_bool(*p))
            .map(|(_, k)| k);
        FaultDraw {
            latency: Duration::from_millis(rule.latency_ms.saturating_add(jitter)),
            kind,
        }
    }
}

const ORDER: [FaultKind; 7] = [
    FaultKind::ServerError,
    FaultKind::Html200,
    FaultKind::Maintenance200,
    FaultKind::Reset,
    FaultKind::ApplyThenDrop,
    FaultKind::Garbage,
    FaultKind::WrongMac,
];

impl FaultRule {
    fn matches(&self, operation: Operation, order_no: &str) -> bool {
        self.operation.is_none_or(|op| op == operation)
            && self.order_no.as_deref().is_none_or(|o| o == order_no)
    }

    fn probabilities(&self) -> [(&'static str, f64); 7] {
        [
            ("p_5xx", self.p_5xx),
            ("p_html_200", self.p_html_200),
            ("p_maintenance_200", self.p_maintenance_200),
            ("p_reset", self.p_reset),
            ("p_apply_then_drop", self.p_apply_then_drop),
            ("p_garbage", self.p_garbage),
            ("p_wrong_mac", self.p_wrong_mac),
        ]
    }

    fn probability_mut(&mut self, kind: FaultKind) -> &mut f64 {
        match kind {
            FaultKind::ServerError => &mut self.p_5xx,
            FaultKind::Html200 => &mut self.p_html_200,
            FaultKind::Maintenance200 => &mut self.p_maintenance_200,
            FaultKind::Reset => &mut self.p_reset,
            FaultKind::ApplyThenDrop => &mut self.p_apply_then_drop,
            FaultKind::Garbage => &mut self.p_garbage,
            FaultKind::WrongMac => &mut self.p_wrong_mac,
        }
    }
}

/// Operations travel by their names ("refund"), not Rust's.
mod operation_name {
    use super::Operation;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        op: &Option<Operation>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match op {
            Some(op) => s.serialize_some(op.as_str()),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Operation>, D::Error> {
        let name: Option<String> = Option::deserialize(d)?;
        name.map(|n| {
            Operation::parse(&n).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "unknown operation {n:?}; one of inquiry, reversal, capture_reversal, refund, refund_reversal"
                ))
            })
        })
        .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn plan_reads_the_documented_json() {
        let plan = FaultPlan::from_json(
            r#"{"rules":[{"operation":"refund","order_no":null,"latency_ms":0,"jitter_ms":0,"p_5xx":0.0,"p_html_200":0.0,"p_maintenance_200":0.0,"p_reset":0.0,"p_apply_then_drop":0.0,"p_garbage":0.0,"p_wrong_mac":1.0}]}"#,
        )
        .unwrap();
        assert_eq!(
            plan,
            FaultPlan::always(FaultKind::WrongMac, Some(Operation::Refund))
        );
        let back: FaultPlan = serde_json::from_str(&serde_json::to_string(&plan).unwrap()).unwrap();
        assert_eq!(back, plan);
        // The README's example.
        assert_eq!(
            FaultPlan::from_json(r#"{"rules":[{"p_maintenance_200":1.0}]}"#).unwrap(),
            FaultPlan::always(FaultKind::Maintenance200, None)
        );
        assert!(FaultPlan::from_json(r#"{"rules":[{"operation":"refundx"}]}"#).is_err());
        assert!(FaultPlan::from_json(r#"{"rules":[{"p_reset":1.5}]}"#).is_err());
        assert!(FaultPlan::from_json(r#"{"rules":[{"p_rest":0.5}]}"#).is_err());
    }

    #[test]
    fn first_matching_rule_wins() {
        let plan = FaultPlan {
            rules: vec![
                FaultRule {
                    order_no: Some("A".into()),
                    p_garbage: 1.0,
                    ..FaultRule::default()
                },
                FaultRule {
                    operation: Some(Operation::Refund),
                    p_reset: 1.0,
                    latency_ms: 5,
                    ..FaultRule::default()
                },
            ],
        };
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(
            plan.draw(Operation::Refund, "A", &mut rng).kind,
            Some(FaultKind::Garbage)
        );
        let d = plan.draw(Operation::Refund, "B", &mut rng);
        assert_eq!(d.kind, Some(FaultKind::Reset));
        assert_eq!(d.latency, Duration::from_millis(5));
        assert_eq!(
            plan.draw(Operation::Inquiry, "B", &mut rng),
            FaultDraw::default()
        );
    }

    #[test]
    fn draws_replay_with_the_same_seed() {
        let plan = FaultPlan::uniform(0.1);
        let run = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..200)
                .map(|_| plan.draw(Operation::Refund, "X", &mut rng).kind)
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        let kinds = run(7);
        assert!(kinds.iter().any(Option::is_none));
        assert!(kinds.iter().any(Option::is_some));
    }
}
