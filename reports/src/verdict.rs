//! The release recommendation: every reason, observed or from an advisory, and the
//! answer they add up to.
//!
//! Rules, in order:
//! - a **blocker** makes the answer *not recommended*: a failure Gauntlet observed
//!   (a conformance case, a crash, a chaos or skew violation) or an advisory that says
//!   not to run the release (data loss, below the minimum etcd or Kubernetes
//!   recommends, out of support);
//! - otherwise a **caveat** makes it *recommended with caveats*: a known issue of the
//!   release that Gauntlet saw (with the release that fixes it), a missed Kubernetes
//!   SLO, an area that could not be judged, an advisory about what clients do with
//!   the reported version;
//! - otherwise *recommended*.
//!
//! Observed and advisory reasons are listed apart ([`Reason::source`]): the report
//! says which ones this run saw.

use std::collections::BTreeMap;

use gauntlet_chaos::fault::FaultKind;
use gauntlet_harness::profile::SemVer;

use crate::advisory;
use crate::model::{
    Answer, Area, CaseStatus, Reason, Recommendation, Report, RoundStatus, Severity, Source, Status,
};

/// Whether the fault named `fault` models a disk stricter than production filesystems
/// (see [`FaultKind::stricter_than_common_filesystems`]): a violation under it is a
/// caveat for those on such a disk, not a blocker for everyone.
pub fn stricter_than_common_filesystems(fault: &str) -> bool {
    FaultKind::by_name(fault).is_some_and(FaultKind::stricter_than_common_filesystems)
}

/// Most case ids an observed reason lists before "and N more".
const MAX_LISTED: usize = 8;

fn observed(area: Area, severity: Severity, title: String) -> Reason {
    Reason {
        source: Source::Observed,
        severity,
        area: Some(area),
        title,
        affected: "every user of this server".into(),
        action: String::new(),
        upgrade_to: None,
        evidence: String::new(),
        url: None,
        rerun: None,
    }
}

fn listed(items: &[String]) -> String {
    if items.len() <= MAX_LISTED {
        items.join(", ")
    } else {
        format!(
            "{}, and {} more",
            items[..MAX_LISTED].join(", "),
            items.len() - MAX_LISTED
        )
    }
}

/// A known issue seen in several places, kept once.
struct KnownSeen {
    area: Area,
    /// Who is affected, from where it was seen (the conformance service, the fault).
    who: String,
    description: String,
    fixed_in: String,
    places: Vec<String>,
    rerun: Option<String>,
}

fn known_reason(url: &str, k: KnownSeen, release: Option<SemVer>) -> Reason {
    // "unfixed" and fixes in another minor do not give an upgrade target in the line.
    let upgrade_to = SemVer::parse(&k.fixed_in)
        .filter(|f| release.is_some_and(|r| (f.0, f.1) == (r.0, r.1) && *f > r))
        .map(|f| f.to_string());
    Reason {
        source: Source::Observed,
        severity: Severity::Caveat,
        area: Some(k.area),
        title: format!("known etcd issue: {}", k.description),
        affected: k.who,
        action: match SemVer::parse(&k.fixed_in) {
            // The upgrade itself is said with `upgrade_to`, once.
            Some(_) if upgrade_to.is_some() => format!("fixed in etcd {}.", k.fixed_in),
            Some(_) => format!("fixed in etcd {}: upgrade to it or later", k.fixed_in),
            None => format!("not fixed upstream ({})", k.fixed_in),
        },
        upgrade_to,
        evidence: format!("seen in {}", listed(&k.places)),
        url: Some(url.to_string()),
        rerun: k.rerun,
    }
}

/// Every observed reason in `report`'s areas.
pub fn observed_reasons(report: &Report) -> Vec<Reason> {
    let release = report
        .target
        .etcd_release
        .as_deref()
        .and_then(SemVer::parse);
    let mut out = Vec::new();
    let mut known: BTreeMap<String, KnownSeen> = BTreeMap::new();
    let mut note_known =
        |area: Area, who: String, k: &crate::model::Known, place: String, rerun: &str| {
            let e = known.entry(k.url.clone()).or_insert_with(|| KnownSeen {
                area,
                who,
                description: k.description.clone(),
                fixed_in: k.fixed_in.clone(),
                places: Vec::new(),
                rerun: Some(rerun.to_string()),
            });
            e.places.push(place);
        };
    if let Some(c) = &report.conformance {
        let mut by_service: BTreeMap<&str, Vec<&crate::model::CaseRow>> = BTreeMap::new();
        for case in c.cases.iter().filter(|x| x.status.is_failure()) {
            by_service.entry(&case.service).or_default().push(case);
        }
        for (service, cases) in by_service {
            let ids: Vec<String> = cases.iter().map(|x| x.id.clone()).collect();
            let mut r = observed(
                Area::Conformance,
                Severity::Blocker,
                format!(
                    "{} {service} conformance case(s) fail: the server breaks etcd's documented API",
                    cases.len()
                ),
            );
            r.action = "do not rely on this server for these calls; report the failures to its maintainers".into();
            r.evidence = format!(
                "{}; first: {}: {}",
                listed(&ids),
                cases[0].id,
                cases[0].detail.lines().next().unwrap_or("")
            );
            r.rerun = Some(format!("{} --filter {}", c.rerun, cases[0].id));
            out.push(r);
        }
        for crash in &c.crashes {
            if let Some(k) = &crash.known {
                note_known(
                    Area::Conformance,
                    "every user of this release: a request kills the member that serves it"
                        .to_string(),
                    k,
                    format!("a crash ({})", crash.headline),
                    &match &crash.trigger {
                        Some(id) => format!("{} --filter {id}", c.rerun),
                        None => c.rerun.clone(),
                    },
                );
                continue;
            }
            let mut r = observed(
                Area::Conformance,
                Severity::Blocker,
                "a member stopped answering during conformance".into(),
            );
            r.action = "find the request that kills it (the conformance report lists the suspects) before running it".into();
            r.evidence = crash.headline.clone();
            r.rerun = Some(match &crash.trigger {
                Some(id) => format!("{} --filter {id}", c.rerun),
                None => c.rerun.clone(),
            });
            out.push(r);
        }
        for case in c
            .cases
            .iter()
            .filter(|x| x.status == CaseStatus::KnownIssue)
        {
            if let Some(k) = &case.known {
                note_known(
                    Area::Conformance,
                    match case.service.as_str() {
                        "auth" => "clusters that enable auth and rely on RBAC to keep users apart"
                            .to_string(),
                        "tls" => "clusters that authenticate clients by certificate".to_string(),
                        s => format!("users of the {s} API on this release"),
                    },
                    k,
                    format!("conformance case {}", case.id),
                    &format!("{} --filter {}", c.rerun, case.id),
                );
            }
        }
    }
    if let Some(ch) = &report.chaos {
        for r in ch
            .rounds
            .iter()
            .filter(|r| r.status == RoundStatus::Violation)
        {
            let stricter = stricter_than_common_filesystems(&r.fault);
            let mut x = observed(
                Area::Chaos,
                if stricter {
                    Severity::Caveat
                } else {
                    Severity::Blocker
                },
                format!(
                    "{} under {} traffic: the history is not what etcd guarantees",
                    r.fault, r.profile
                ),
            );
            x.action = "do not run it where this fault can happen (any production cluster can crash, pause or be partitioned)".into();
            if stricter {
                x.affected = "clusters on a filesystem that may lose a new directory entry whose directory was not fsynced (POSIX allows it; ext4 and XFS commit the entry with the first fsync of a file in it)".into();
                x.action = "keep data dirs on ext4 or XFS; ask the server's maintainers to fsync directories after creating, renaming or removing entries".into();
            }
            x.evidence = format!(
                "round {}: {}{}",
                r.round,
                r.details.first().map(String::as_str).unwrap_or(""),
                r.evidence
                    .as_deref()
                    .map(|e| format!(" (evidence: {e})"))
                    .unwrap_or_default()
            );
            x.rerun = Some(r.rerun.clone());
            out.push(x);
        }
        for r in &ch.rounds {
            for k in &r.known {
                note_known(
                    Area::Chaos,
                    format!("clusters that can suffer {} on this release", r.fault),
                    k,
                    format!("chaos round {} ({})", r.round, r.fault),
                    &r.rerun,
                );
            }
        }
        let unjudged: Vec<String> = ch
            .rounds
            .iter()
            .filter(|r| matches!(r.status, RoundStatus::Unknown | RoundStatus::NotRun))
            .map(|r| format!("round {} ({})", r.round, r.fault))
            .collect();
        if !unjudged.is_empty() {
            let mut x = observed(
                Area::Chaos,
                Severity::Caveat,
                format!(
                    "{} chaos round(s) could not be judged fully",
                    unjudged.len()
                ),
            );
            x.action = "rerun them; an unjudged round is neither a pass nor a failure".into();
            x.evidence = listed(&unjudged);
            out.push(x);
        }
    }
    if let Some(s) = &report.skew {
        // Known bugs met by one scenario under several profiles are one reason.
        let mut known_skew: BTreeMap<&str, Vec<&crate::model::SkewRow>> = BTreeMap::new();
        for row in &s.rows {
            match row.verdict.as_str() {
                "FAIL" => {
                    let mut x = observed(
                        Area::Skew,
                        Severity::Blocker,
                        format!(
                            "{} -> {}: {} [{}] fails",
                            s.from, s.to, row.scenario, row.profile
                        ),
                    );
                    x.affected = format!("clusters upgrading from {} to {}", s.from, s.to);
                    x.action = "do not upgrade this way; the details say which step broke".into();
                    x.evidence = row.details.first().cloned().unwrap_or_default();
                    x.rerun = Some(row.rerun.clone());
                    out.push(x);
                }
                "known issue" => known_skew
                    .entry(row.scenario.as_str())
                    .or_default()
                    .push(row),
                "unknown" | "error" => {
                    let mut x = observed(
                        Area::Skew,
                        Severity::Caveat,
                        format!("{} [{}] could not be judged", row.scenario, row.profile),
                    );
                    x.action = "rerun it".into();
                    x.evidence = row.details.first().cloned().unwrap_or_default();
                    x.rerun = Some(row.rerun.clone());
                    out.push(x);
                }
                _ => {}
            }
        }
        for (scenario, rows) in known_skew {
            let profiles: Vec<&str> = rows.iter().map(|r| r.profile.as_str()).collect();
            let mut fixed: Vec<String> = rows.iter().flat_map(|r| r.fixed_in.clone()).collect();
            fixed.sort();
            fixed.dedup();
            let mut x = observed(
                Area::Skew,
                Severity::Caveat,
                format!(
                    "{} -> {}: {scenario} [{}] meets a known bug of the release",
                    s.from,
                    s.to,
                    profiles.join(", ")
                ),
            );
            x.affected = format!("clusters upgrading from {} to {}", s.from, s.to);
            x.action = match fixed.as_slice() {
                [] => "see the details".into(),
                f => format!(
                    "fixed in {}: avoid this step before that release",
                    f.join(", ")
                ),
            };
            x.evidence = rows[0].details.first().cloned().unwrap_or_default();
            x.rerun = Some(rows[0].rerun.clone());
            out.push(x);
        }
    }
    if let Some(b) = &report.bench {
        for w in &b.workloads {
            if let Some(e) = &w.error {
                let mut x = observed(
                    Area::Bench,
                    Severity::Caveat,
                    format!("benchmark {} could not run", w.workload),
                );
                x.action = "rerun it; its figures are missing from the report".into();
                x.evidence = e.clone();
                x.rerun = Some(w.rerun.clone());
                out.push(x);
            }
            for s in w.slo.iter().filter(|s| !s.pass) {
                let mut x = observed(
                    Area::Bench,
                    Severity::Caveat,
                    format!("Kubernetes SLO missed: {}", s.name),
                );
                x.affected =
                    "clusters of the size this profile models, on hardware like the test machine's"
                        .into();
                x.action = "size the hardware up, or rerun on the production hardware".into();
                x.evidence = format!(
                    "p99 {:.3} s over {} samples against a limit of {:.3} s",
                    s.measured_s, s.samples, s.limit_s
                );
                x.rerun = Some(w.rerun.clone());
                out.push(x);
            }
            if w.error.is_none() && w.error_share() > crate::convert::MAX_ERROR_SHARE {
                let mut x = observed(
                    Area::Bench,
                    Severity::Caveat,
                    format!("benchmark {}: over 1% of requests failed", w.workload),
                );
                x.action = "read the error distribution in the bench result".into();
                x.evidence = format!("{:.1}% failed", w.error_share() * 100.0);
                x.rerun = Some(w.rerun.clone());
                out.push(x);
            }
        }
    }
    for a in &report.areas {
        if a.status == Status::Error {
            let mut x = observed(
                a.area,
                Severity::Caveat,
                format!("{} could not be judged", a.area),
            );
            x.action = "rerun it; the area counts neither for nor against the server".into();
            x.evidence = a.summary.clone();
            out.push(x);
        }
    }
    for (url, k) in known {
        out.push(known_reason(&url, k, release));
    }
    out
}

/// The recommendation for `report` (its areas filled in; its recommendation ignored).
pub fn recommend(report: &Report) -> Recommendation {
    let release = report
        .target
        .etcd_release
        .as_deref()
        .and_then(SemVer::parse);
    let reported = SemVer::parse(&report.target.server_version);
    let mut reasons = observed_reasons(report);
    reasons.extend(
        advisory::applicable(release, reported)
            .iter()
            .map(|a| a.reason(release)),
    );
    // Blockers first; within a severity, observed before advisory.
    reasons.sort_by_key(|r| (std::cmp::Reverse(r.severity), r.source != Source::Observed));
    let blockers = reasons
        .iter()
        .filter(|r| r.severity == Severity::Blocker)
        .count();
    let caveats = reasons.len() - blockers;
    let answer = if blockers > 0 {
        Answer::NotRecommended
    } else if caveats > 0 {
        Answer::RecommendedWithCaveats
    } else {
        Answer::Recommended
    };
    // The upgrade target: the advisories' (which knows about ends of support) or the
    // highest fix of an observed known issue in the release's minor, whichever is higher.
    let upgrade_to = release.and_then(|r| {
        let from_known = reasons
            .iter()
            .filter(|x| x.source == Source::Observed)
            .filter_map(|x| x.upgrade_to.as_deref().and_then(SemVer::parse))
            .max();
        let from_advisories = advisory::upgrade_target(r);
        from_known.max(from_advisories)
    });
    let count = |sev: Severity, src: Source| {
        reasons
            .iter()
            .filter(|r| r.severity == sev && r.source == src)
            .count()
    };
    let what = match &report.target.etcd_release {
        Some(v) => format!("etcd {v}"),
        None => format!(
            "{} (reports {})",
            report.target.label, report.target.server_version
        ),
    };
    let mut summary = match answer {
        Answer::NotRecommended => format!(
            "Do not run {what} in production: {} blocker(s), {} observed in this run and {} from published advisories.",
            blockers,
            count(Severity::Blocker, Source::Observed),
            count(Severity::Blocker, Source::Advisory)
        ),
        Answer::RecommendedWithCaveats => format!(
            "{what} can run in production, with {caveats} caveat(s) ({} observed, {} from advisories): read them to see whether they affect you.",
            count(Severity::Caveat, Source::Observed),
            count(Severity::Caveat, Source::Advisory)
        ),
        Answer::Recommended => format!(
            "{what} held everything this run tested, and no published advisory applies."
        ),
    };
    match (upgrade_to, release) {
        // Leaving a minor: the fixes of the known issues seen here have other numbers
        // in the next minor, so the floor is the advisories' and the advice the latest patch.
        (Some(u), Some(r)) if advisory::leaves_minor(r) => summary.push_str(&format!(
            " {}.{} is out of support: upgrade to the latest patch release of {}.{} (at least {u}).",
            r.0,
            r.1,
            u.0,
            u.1
        )),
        (Some(u), _) => summary.push_str(&format!(" Upgrade to etcd {u} or later.")),
        (None, _) => {}
    }
    if report.areas.iter().any(|a| a.status == Status::NotRun) {
        let not_run: Vec<&str> = report
            .areas
            .iter()
            .filter(|a| a.status == Status::NotRun)
            .map(|a| a.area.name())
            .collect();
        summary.push_str(&format!(" Not tested: {}.", not_run.join(", ")));
    }
    Recommendation {
        level: answer,
        summary,
        upgrade_to: upgrade_to.map(|u| u.to_string()),
        reasons,
    }
}
