//! No input makes the Agent panic (issue 18): for every timing `Timing::new` accepts, a random
//! bounded sequence of inputs (snapshots of reachable registries, probe results, outcomes for
//! real and random tokens, deadlines, the application's commands), at arbitrary local times
//! (forwards, backwards, far jumps, around `LOCAL_TIME_MS_MAX` and `u64::MAX`), never panics in
//! a debug build (every `debug_assert!` on), and an input the Agent refuses changes nothing.

#![allow(clippy::unwrap_used)]

use membership_core::testing::{actor, reachable};
use membership_core::{
    drain, served_by, Agent, ClockReading, Event, NodeId, Output, ProposalError, ProposalOutcome,
    State, Timing, TimingSettings, LOCAL_TIME_MS_MAX, NODES_MAX, TIMING_MS_MAX,
};
use proptest::prelude::*;
use std::sync::OnceLock;

/// The most inputs one case feeds.
const INPUTS_MAX: usize = 48;
/// How many reachable registries the snapshots are drawn from.
const STATES: usize = 12;
/// Nodes in those registries (the Agent is n1).
const NODES: u16 = 3;
/// The most tokens remembered from the Agent's proposals.
const TOKENS_MAX: usize = 64;

/// Reachable registries of 3 nodes and 4 actors (half from the whole cluster up).
fn states() -> &'static [State] {
    static STATES_CELL: OnceLock<Vec<State>> = OnceLock::new();
    STATES_CELL.get_or_init(|| {
        (0..STATES)
            .map(|seed| reachable(NODES, 4, seed as u64, seed * 3))
            .collect()
    })
}

/// How an input's time is drawn from the previous one.
#[derive(Clone, Copy, Debug)]
enum Time {
    /// A little later (or the same time).
    Forward(u64),
    /// Much later (up to a few times the largest setting).
    Jump(u64),
    /// Earlier: the clock went backwards.
    Back(u64),
    /// Any time at all.
    Anywhere(u64),
    /// Around `LOCAL_TIME_MS_MAX` (either side).
    NearLimit(i64),
    /// Just below `u64::MAX`.
    NearEnd(u64),
    /// The Agent's own next deadline.
    Deadline,
}

fn time() -> impl Strategy<Value = Time> {
    prop_oneof![
        8 => (0u64..200).prop_map(Time::Forward),
        2 => (0u64..4 * TIMING_MS_MAX).prop_map(Time::Jump),
        2 => (0u64..500).prop_map(Time::Back),
        1 => any::<u64>().prop_map(Time::Anywhere),
        1 => (-2_000i64..2_000).prop_map(Time::NearLimit),
        1 => (0u64..1_000).prop_map(Time::NearEnd),
        4 => Just(Time::Deadline),
    ]
}

/// One input to the Agent.
#[derive(Clone, Debug)]
enum Input {
    Snapshot {
        at: Time,
        /// How long before arrival the read was asked for (may exceed the arrival time).
        age_ms: u64,
        /// Read after arrival instead.
        late: bool,
        state: usize,
        round: u64,
        slot: Option<u64>,
    },
    Probe {
        at: Time,
        peer: u16,
        age_ms: u64,
        ok: bool,
    },
    Outcome {
        at: Time,
        /// An index into the tokens seen, or (past them) a random token.
        token: usize,
        random_token: u64,
        outcome: u8,
    },
    Timeout(Time),
    Join(Time),
    Leave(Time),
    Place(Time, u64),
    Submit(u16),
    /// A clock reading (`handle_clock`): the primary, the reference and the wall clock, each
    /// moved on its own.
    Clock(Time, Time, Time),
}

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        4 => (time(), 0u64..300, any::<bool>(), 0..STATES, 0u64..4, prop::option::of(0u64..4))
            .prop_map(|(at, age_ms, late, state, round, slot)| Input::Snapshot {
                at,
                age_ms,
                late: late && age_ms % 7 == 0,
                state,
                round,
                slot,
            }),
        2 => (time(), 0u16..=NODES_MAX + 1, 0u64..300, any::<bool>())
            .prop_map(|(at, peer, age_ms, ok)| Input::Probe { at, peer, age_ms, ok }),
        4 => (time(), 0usize..80, any::<u64>(), 0u8..7).prop_map(
            |(at, token, random_token, outcome)| Input::Outcome {
                at,
                token,
                random_token,
                outcome,
            }
        ),
        4 => time().prop_map(Input::Timeout),
        1 => time().prop_map(Input::Join),
        1 => time().prop_map(Input::Leave),
        1 => (time(), 1u64..6).prop_map(|(at, a)| Input::Place(at, a)),
        1 => (1u16..=NODES).prop_map(Input::Submit),
        4 => (time(), time(), time()).prop_map(|(p, r, w)| Input::Clock(p, r, w)),
    ]
}

/// A duration of either scale: small (the usual ms) or up to the largest setting.
fn duration() -> impl Strategy<Value = u64> {
    prop_oneof![3 => 1u64..400, 1 => 1u64..=TIMING_MS_MAX]
}

/// Timing settings around the rule's edge: many are refused (the test keeps the accepted ones).
fn settings() -> impl Strategy<Value = TimingSettings> {
    (
        (duration(), 1u64..400, 0u64..=100_000, 0u64..600),
        (duration(), duration(), duration(), duration(), duration()),
        prop_oneof![1u64..8, Just(u64::MAX)],
    )
        .prop_map(
            |(
                (heartbeat, lease_extra, ppm, ft_extra),
                (probe, timeout, suspect, snap, retry),
                batch,
            )| {
                let lease = heartbeat.saturating_add(lease_extra);
                // Between lease + heartbeat (refused) and about 1.4 x that (accepted at 10%).
                let base = lease.saturating_add(heartbeat);
                let failure = base.saturating_add(ft_extra.saturating_mul(base / 400 + 1));
                TimingSettings {
                    heartbeat_interval_ms: heartbeat,
                    failure_timeout_ms: failure,
                    lease_ms: lease,
                    max_clock_rate_error_ppm: ppm,
                    probe_interval_ms: probe,
                    probe_timeout_ms: timeout,
                    suspect_after_ms: suspect,
                    snapshot_interval_ms: snap,
                    retry_backoff_ms: retry,
                    migration_batch: batch,
                }
            },
        )
}

/// The time an input is fed at, from the harness's clock `clock` and the Agent's deadline.
fn resolve(at: Time, clock: u64, agent: &Agent) -> u64 {
    match at {
        Time::Forward(d) => clock.saturating_add(d),
        Time::Jump(d) => clock.saturating_add(d),
        Time::Back(d) => clock.saturating_sub(d),
        Time::Anywhere(t) => t,
        Time::NearLimit(d) => LOCAL_TIME_MS_MAX.saturating_add_signed(d),
        Time::NearEnd(d) => u64::MAX - d,
        Time::Deadline => agent.poll_timeout().unwrap_or(clock),
    }
}

fn outcome(code: u8, node: NodeId) -> ProposalOutcome {
    match code {
        0 | 1 => ProposalOutcome::Committed { effects: vec![] },
        2 => ProposalOutcome::Unknown,
        3 => ProposalOutcome::Unavailable,
        4 => ProposalOutcome::Refused(ProposalError::StaleIncarnation {
            node,
            incarnation: 1,
            current: 2,
        }),
        5 => ProposalOutcome::Refused(ProposalError::NothingToMigrate { term: 1, max: 1 }),
        _ => ProposalOutcome::Refused(ProposalError::StaleRound {
            round: 0,
            current: 1,
        }),
    }
}

/// Feeds `inputs` to an Agent of n1 with `timing`, starting at `start_ms`; panics only if the
/// Agent does, or if a refused input changed it.
fn feed(timing: Timing, start_ms: u64, inputs: &[Input]) {
    let me = NodeId(1);
    let mut agent = Agent::new(me, 1, timing, start_ms);
    let mut clock = start_ms;
    let (mut reference, mut wall) = (start_ms, start_ms);
    let mut tokens: Vec<u64> = Vec::new();
    let mut outputs: Vec<Output> = Vec::new();
    drain(&mut agent, &mut outputs);
    for input in inputs {
        let before = format!("{agent:?}");
        let refused = match input.clone() {
            Input::Snapshot {
                at,
                age_ms,
                late,
                state,
                round,
                slot,
            } => {
                let now = resolve(at, clock, &agent);
                clock = now;
                let read_at = if late {
                    now.saturating_add(age_ms + 1)
                } else {
                    now.saturating_sub(age_ms)
                };
                let state = states()[state].clone();
                agent
                    .handle_snapshot(now, read_at, state, round, slot)
                    .err()
            }
            Input::Probe {
                at,
                peer,
                age_ms,
                ok,
            } => {
                let now = resolve(at, clock, &agent);
                clock = now;
                let sent = if age_ms % 11 == 0 {
                    now.saturating_add(1)
                } else {
                    now.saturating_sub(age_ms)
                };
                agent.handle_probe(now, NodeId(peer), sent, ok).err()
            }
            Input::Outcome {
                at,
                token,
                random_token,
                outcome: code,
            } => {
                let now = resolve(at, clock, &agent);
                clock = now;
                let token = tokens.get(token).copied().unwrap_or(random_token);
                agent.handle_outcome(now, token, outcome(code, me)).err()
            }
            Input::Timeout(at) => {
                let now = resolve(at, clock, &agent);
                clock = now;
                agent.handle_timeout(now).err()
            }
            Input::Join(at) => {
                clock = resolve(at, clock, &agent);
                agent.join(clock);
                None
            }
            Input::Leave(at) => {
                clock = resolve(at, clock, &agent);
                agent.leave(clock);
                None
            }
            Input::Place(at, a) => {
                clock = resolve(at, clock, &agent);
                let _ = agent.place(actor(a), clock);
                None
            }
            Input::Submit(node) => {
                let _ = agent.submit(Event::SendHeartbeat { node: NodeId(node) });
                None
            }
            Input::Clock(p, r, w) => {
                clock = resolve(p, clock, &agent);
                reference = resolve(r, reference, &agent);
                wall = resolve(w, wall, &agent);
                let reading = ClockReading {
                    now_ms: clock,
                    reference_ms: reference,
                    wall_ms: wall,
                };
                match agent.handle_clock(reading) {
                    Ok(fault) => {
                        assert!(fault.is_none() || agent.is_fenced());
                        None
                    }
                    Err(error) => Some(error),
                }
            }
        };
        if let Some(error) = refused {
            assert_eq!(
                format!("{agent:?}"),
                before,
                "the refused input {input:?} ({error}) changed the Agent"
            );
        }
        outputs.clear();
        drain(&mut agent, &mut outputs);
        for output in &outputs {
            if let Output::Propose(out) = output {
                if tokens.len() < TOKENS_MAX {
                    tokens.push(out.token);
                }
            }
        }
        for a in 1..6 {
            let _ = agent.may_serve(actor(a), clock);
        }
        let _ = served_by([(&agent, clock)]);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 384, ..ProptestConfig::default() })]

    #[test]
    fn no_input_sequence_makes_an_accepted_timing_panic(
        settings in settings(),
        start in prop_oneof![4 => 0u64..1_000, 1 => any::<u64>(), 1 => (0u64..2_000).prop_map(|d| LOCAL_TIME_MS_MAX - d)],
        inputs in prop::collection::vec(input(), 1..INPUTS_MAX),
    ) {
        let timing = Timing::new(settings);
        prop_assume!(timing.is_ok());
        feed(timing.unwrap(), start, &inputs);
    }

    #[test]
    fn no_input_sequence_makes_the_default_timings_panic(
        fast in any::<bool>(),
        inputs in prop::collection::vec(input(), 1..INPUTS_MAX),
    ) {
        let timing = if fast { Timing::fast() } else { Timing::default_timing() };
        feed(timing, 0, &inputs);
    }
}

proptest! {
    /// `Timing::preset` knows exactly the two preset names, and each gives settings that
    /// `Timing::new` accepts, the same as the named constructor's.
    #[test]
    fn a_preset_is_named_default_or_fast_and_is_valid(name in "[a-z]{0,8}") {
        match Timing::preset(&name) {
            Some(settings) => {
                let expected = if name == "fast" { Timing::fast() } else { Timing::default_timing() };
                prop_assert!(name == "fast" || name == "default");
                prop_assert_eq!(Timing::new(settings), Ok(expected));
            }
            None => prop_assert!(name != "fast" && name != "default"),
        }
        prop_assert_eq!(Timing::preset("fast"), Some(Timing::FAST_SETTINGS));
        prop_assert_eq!(Timing::preset("default"), Some(Timing::DEFAULT_SETTINGS));
    }
}
