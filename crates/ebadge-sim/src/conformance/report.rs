//! What a kit run found: one [`Check`] per rule, each with the section of D3.2.3 or D3.1.3 it
//! comes from and, when it did not hold, why; rendered for a person, as JSON and as JUnit XML.

use serde::Serialize;
use std::fmt::Write as _;

/// How one check came out.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", content = "detail", rename_all = "lowercase")]
pub enum Outcome {
    /// It held; what was seen (a time, a count).
    Pass(String),
    /// It did not hold, and why.
    Fail(String),
    /// It could not be tried, and why (an earlier failure it depends on, a broker that is not
    /// the kit's own to restart).
    Skip(String),
}

/// One rule of the bus, checked against the client under test.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// Short and stable, for scripts: `answers-activate`.
    pub id: &'static str,
    /// Where the rule is written: `D3.1.3 5.3.1–5.3.4`.
    pub section: &'static str,
    /// The rule in a sentence.
    pub title: &'static str,
    /// How it came out.
    #[serde(flatten)]
    pub outcome: Outcome,
}

impl Check {
    /// True unless it failed (a skipped check fails nothing: its cause is reported by the check
    /// it depends on).
    pub fn holds(&self) -> bool {
        !matches!(self.outcome, Outcome::Fail(_))
    }
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The role the client played: `heh`.
    pub role: &'static str,
    /// Its entity name.
    pub client: String,
    /// The kit's entity, its counterpart.
    pub counterpart: String,
    /// The command that was run.
    pub command: String,
    /// Where its standard output and error went.
    pub client_log: String,
    /// Seconds the run took.
    pub seconds: f64,
    /// Every check, in the order they ran.
    pub checks: Vec<Check>,
}

impl Report {
    /// True when no check failed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(Check::holds)
    }

    /// (passed, failed, skipped).
    pub fn tally(&self) -> (usize, usize, usize) {
        let mut tally = (0, 0, 0);
        for check in &self.checks {
            match check.outcome {
                Outcome::Pass(_) => tally.0 += 1,
                Outcome::Fail(_) => tally.1 += 1,
                Outcome::Skip(_) => tally.2 += 1,
            }
        }
        tally
    }

    /// The ids of the checks that failed.
    pub fn failed(&self) -> Vec<&'static str> {
        self.checks
            .iter()
            .filter(|c| !c.holds())
            .map(|c| c.id)
            .collect()
    }

    /// One line per check and a summary, for a terminal.
    pub fn to_text(&self) -> String {
        let mut text = String::new();
        for check in &self.checks {
            let (word, detail) = match &check.outcome {
                Outcome::Pass(d) => ("pass", d),
                Outcome::Fail(d) => ("FAIL", d),
                Outcome::Skip(d) => ("skip", d),
            };
            let _ = writeln!(
                text,
                "{word} {:<30} {} [{}]\n     {detail}",
                check.id, check.title, check.section
            );
        }
        let (passed, failed, skipped) = self.tally();
        let _ = writeln!(
            text,
            "{} as {} ({}): {passed} passed, {failed} failed, {skipped} skipped in {:.0} s; its output: {}",
            self.command, self.client, self.role, self.seconds, self.client_log
        );
        text
    }

    /// JUnit XML, one test case per check (a skipped check is `<skipped>`), for a partner's CI.
    pub fn to_junit(&self) -> String {
        let (_, failed, skipped) = self.tally();
        let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            xml,
            "<testsuite name=\"ebadge-conformance-{}\" tests=\"{}\" failures=\"{failed}\" skipped=\"{skipped}\" time=\"{:.3}\">",
            self.role,
            self.checks.len(),
            self.seconds
        );
        for check in &self.checks {
            let _ = write!(
                xml,
                "  <testcase classname=\"{}\" name=\"{}\">",
                escape(&format!("{} {}", self.role, check.section)),
                escape(check.id)
            );
            match &check.outcome {
                Outcome::Pass(detail) => {
                    let _ = write!(xml, "<system-out>{}</system-out>", escape(detail));
                }
                Outcome::Fail(reason) => {
                    let _ = write!(
                        xml,
                        "<failure message=\"{}\">{}</failure>",
                        escape(check.title),
                        escape(reason)
                    );
                }
                Outcome::Skip(reason) => {
                    let _ = write!(xml, "<skipped message=\"{}\"/>", escape(reason));
                }
            }
            xml.push_str("</testcase>\n");
        }
        xml.push_str("</testsuite>\n");
        xml
    }
}

/// XML's five special characters, and control characters (a client's output may hold any)
/// as a replacement character, which XML 1.0 cannot carry otherwise.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' | '\t' => out.push(c),
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(outcomes: Vec<Outcome>) -> Report {
        Report {
            role: "heh",
            client: "heh-0000000c0de1".into(),
            counterpart: "kit-vpp".into(),
            command: "true".into(),
            client_log: "client.log".into(),
            seconds: 1.0,
            checks: outcomes
                .into_iter()
                .map(|outcome| Check {
                    id: "answers-activate",
                    section: "D3.1.3 5.3",
                    title: "answers <activate> & more",
                    outcome,
                })
                .collect(),
        }
    }

    #[test]
    fn a_run_passes_only_without_failures_and_skips_fail_nothing() {
        assert!(report(vec![Outcome::Pass("ok".into()), Outcome::Skip("no".into())]).passed());
        let failed = report(vec![
            Outcome::Pass("ok".into()),
            Outcome::Fail("late".into()),
        ]);
        assert!(!failed.passed());
        assert_eq!(failed.failed(), vec!["answers-activate"]);
        assert_eq!(failed.tally(), (1, 1, 0));
    }

    #[test]
    fn junit_counts_failures_and_skips_and_escapes_what_a_client_wrote() {
        let xml = report(vec![
            Outcome::Fail("no answer <within> 5 s \u{1b}[31m".into()),
            Outcome::Skip("depends on \"connects\"".into()),
        ])
        .to_junit();
        assert!(
            xml.contains("tests=\"2\" failures=\"1\" skipped=\"1\""),
            "{xml}"
        );
        assert!(
            xml.contains("no answer &lt;within&gt; 5 s \u{fffd}[31m"),
            "{xml}"
        );
        assert!(xml.contains("<skipped message=\"depends on &quot;connects&quot;\"/>"));
        assert!(xml.contains("message=\"answers &lt;activate&gt; &amp; more\""));
    }

    #[test]
    fn json_names_each_outcome_and_its_detail() {
        let value = serde_json::to_value(report(vec![Outcome::Fail("late".into())])).unwrap();
        let check = &value["checks"][0];
        assert_eq!(check["outcome"], "fail");
        assert_eq!(check["detail"], "late");
        assert_eq!(check["id"], "answers-activate");
    }
}
