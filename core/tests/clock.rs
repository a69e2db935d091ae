//! The clock watchdog (`Agent::handle_clock`): one Agent with the fast timing, Active on a fixed
//! registry of three Active nodes with actor 1 placed on it, driven one millisecond at a time
//! the way the runtime drives it (a clock reading on every wake-up, then its deadline; every
//! heartbeat commits at once and every read is answered at once). Exact outputs.

#![allow(clippy::unwrap_used)]

use membership_core::testing::{actor, place_on};
use membership_core::{
    drain, Agent, ClockFault, ClockReading, Decision, Event, FenceReason, InputError, NodeId,
    Notification, Output, ProposalOutcome, State, Timing, CLOCK_GAP_SLACK_MS,
    CLOCK_READING_SLACK_MS, LOCAL_TIME_MS_MAX,
};
use proptest::prelude::*;

/// The fast timing's hand-off wait (ms).
const FAST_HANDOFF_MS: u64 = 77;

fn registry() -> State {
    let three = membership_core::testing::run(
        membership_core::Config::fixed(3).unwrap(),
        &membership_core::testing::THREE_ACTIVE,
    );
    place_on(&three, 1, [1])
}

/// What the application sees: decisions and fence notifications, with their reading's time.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seen {
    Decide(Decision),
    Fenced(FenceReason),
    Unfenced,
}

struct Node {
    agent: Agent,
    state: State,
    seen: Vec<(u64, Seen)>,
}

impl Node {
    fn new() -> Node {
        let mut agent = Agent::new(NodeId(1), 1, Timing::fast(), 0);
        agent.join(0);
        Node {
            agent,
            state: registry(),
            seen: Vec::new(),
        }
    }

    /// Executes the Agent's outputs: heartbeats commit at `now`, a read is answered at `now`.
    fn drain(&mut self, now: u64) {
        for _ in 0..4 {
            let mut outputs: Vec<Output> = Vec::new();
            drain(&mut self.agent, &mut outputs);
            if outputs.is_empty() {
                return;
            }
            for output in outputs {
                match output {
                    Output::Propose(out) => {
                        if matches!(
                            out.proposal.action,
                            membership_core::Action::Step(Event::SendHeartbeat { .. })
                        ) {
                            let committed = ProposalOutcome::Committed { effects: vec![] };
                            self.agent
                                .handle_outcome(now, out.token, committed)
                                .unwrap();
                        }
                    }
                    Output::Read => self
                        .agent
                        .handle_snapshot(now, now, self.state.clone(), 0, Some(1))
                        .unwrap(),
                    Output::Decide(d) => self.seen.push((now, Seen::Decide(d))),
                    Output::Notify(Notification::Fenced { reason }) => {
                        self.seen.push((now, Seen::Fenced(reason)));
                    }
                    Output::Notify(Notification::Unfenced) => {
                        self.seen.push((now, Seen::Unfenced));
                    }
                    _ => {}
                }
            }
        }
    }

    /// One wake-up: the clock reading, then the deadline. Returns the watchdog's verdict.
    fn wake(&mut self, reading: ClockReading) -> Option<ClockFault> {
        let fault = self.agent.handle_clock(reading).unwrap();
        let now = reading.now_ms;
        self.drain(now);
        self.agent.handle_timeout(now).unwrap();
        self.drain(now);
        fault
    }

    /// Honest clocks from `from` to `to` (inclusive): all three advance together, the primary
    /// shifted by `primary_offset`, the wall by `wall_offset`.
    fn honest(&mut self, (from, to): (u64, u64), primary_offset: u64, wall_offset: u64) {
        for t in from..=to {
            let fault = self.wake(reading(t + primary_offset, t, t + wall_offset));
            assert_eq!(fault, None, "at reference {t}");
        }
    }

    fn take_seen(&mut self) -> Vec<(u64, Seen)> {
        std::mem::take(&mut self.seen)
    }
}

fn reading(now_ms: u64, reference_ms: u64, wall_ms: u64) -> ClockReading {
    ClockReading {
        now_ms,
        reference_ms,
        wall_ms,
    }
}

fn a1(decide: fn(membership_core::ActorId, u64) -> Decision) -> Seen {
    Seen::Decide(decide(actor(1), 1))
}

fn activate(actor: membership_core::ActorId, epoch: u64) -> Decision {
    Decision::Activate { actor, epoch }
}

fn deactivate(actor: membership_core::ActorId, epoch: u64) -> Decision {
    Decision::Deactivate { actor, epoch }
}

/// The fence a fault causes while actor 1 is served.
fn fenced_serving(at: u64, fault: ClockFault) -> Vec<(u64, Seen)> {
    vec![
        (at, Seen::Decide(Decision::Fence)),
        (at, a1(deactivate)),
        (at, Seen::Fenced(FenceReason::ClockSuspect(fault))),
    ]
}

/// A node serving actor 1 since the hand-off wait, with honest clocks up to 200 (its first
/// heartbeat commits at 0, and the read answered with it unfences it).
fn serving() -> Node {
    let mut node = Node::new();
    node.honest((0, 200), 0, 0);
    assert_eq!(
        node.take_seen(),
        vec![
            (0, Seen::Decide(Decision::Unfence)),
            (0, Seen::Unfenced),
            (FAST_HANDOFF_MS, a1(activate)),
        ]
    );
    assert_eq!(node.state.placement(actor(1)).unwrap().epoch, 1);
    node
}

#[test]
fn the_watchdog_bounds_are_named_and_derived_from_the_timing() {
    let fast = Timing::fast();
    assert_eq!(fast.clock_window_ms(), 75);
    assert_eq!(fast.clock_gap_max_ms(), 2 * 25 + CLOCK_GAP_SLACK_MS);
    assert_eq!(Timing::default_timing().clock_gap_max_ms(), 300);
    assert_eq!(CLOCK_READING_SLACK_MS, 2);
}

#[test]
fn clocks_within_the_rate_bound_never_fence() {
    let mut node = serving();
    // For 20 s the reference runs 100 ppm fast of the primary (1 ms more every 10 s), the wall
    // clock 100 ppm slow (1 ms less every 10 s): within the fast timing's 200 ppm.
    for t in 201..=20_000 {
        let reference = t + (t - 200) / 10_000;
        let wall = t - (t - 200) / 10_000;
        assert_eq!(node.wake(reading(t, reference, wall)), None, "at {t}");
    }
    assert_eq!(node.take_seen(), vec![]);
    assert!(node.agent.may_serve(actor(1), 20_000));
}

#[test]
fn a_forward_jump_of_the_primary_clock_fences_until_a_later_heartbeat_and_read() {
    let mut node = serving();
    // The primary and the wall clock jump 30 ms. The reference's window restarted at 150 (0,
    // 75, 150): the primary advanced 81 ms, the reference 51.
    let fault = ClockFault::Rate {
        primary_ms: 81,
        reference_ms: 51,
    };
    assert_eq!(node.wake(reading(231, 201, 231)), Some(fault));
    assert_eq!(node.take_seen(), fenced_serving(231, fault));
    assert!(node.agent.is_fenced());
    assert!(!node.agent.may_serve(actor(1), 231));
    // (As a 30 ms suspend shows: the primary and the wall clock count it, the reference does
    // not.) The heartbeat sent and committed at 231 is not after the suspicious reading;
    // the next one (sent at 256) is, and the read answered with it unfences the node; actor 1
    // waits a whole hand-off again.
    node.honest((202, 400), 30, 30);
    assert_eq!(
        node.take_seen(),
        vec![
            (256, Seen::Decide(Decision::Unfence)),
            (256, Seen::Unfenced),
            (256 + FAST_HANDOFF_MS, a1(activate))
        ]
    );
}

#[test]
fn a_gap_between_wake_ups_fences_even_when_both_clocks_agree() {
    let mut node = serving();
    let gap = ClockFault::Gap { gap_ms: 1_001 };
    assert_eq!(node.wake(reading(1_201, 1_201, 1_201)), Some(gap));
    assert_eq!(node.take_seen(), fenced_serving(1_201, gap));
    // Allowed: up to two heartbeat intervals and the slack.
    let mut node = serving();
    let ok = 200 + Timing::fast().clock_gap_max_ms();
    assert_eq!(node.wake(reading(ok, ok, ok)), None);
}

#[test]
fn a_clock_that_goes_back_fences_and_its_time_is_not_taken() {
    let mut node = serving();
    assert_eq!(
        node.wake(reading(201, 150, 201)),
        Some(ClockFault::Backwards)
    );
    assert_eq!(node.take_seen(), fenced_serving(201, ClockFault::Backwards));
    // The primary going back: fenced already, nothing new told; its time is refused by the
    // other inputs as before.
    let mut node = serving();
    assert_eq!(
        node.agent.handle_clock(reading(150, 201, 201)),
        Ok(Some(ClockFault::Backwards))
    );
    assert_eq!(
        node.agent.handle_timeout(150),
        Err(InputError::TimeWentBackwards {
            now_ms: 150,
            latest_ms: 200
        })
    );
    assert!(node.agent.is_fenced());
}

#[test]
fn a_pause_that_stopped_both_monotonic_clocks_is_seen_when_the_wall_clock_is_stepped() {
    let mut node = serving();
    // A VM paused for 2 s with both monotonic clocks stopped: they resume where they stopped,
    // and the wall clock, stepped on resume, shows the 2 s.
    let fault = ClockFault::WallStep {
        primary_ms: 51,
        wall_ms: 2_051,
    };
    assert_eq!(node.wake(reading(201, 201, 2_201)), Some(fault));
    assert_eq!(node.take_seen(), fenced_serving(201, fault));
}

#[test]
fn an_eight_percent_slow_primary_clock_fences_within_thirty_ms() {
    let mut node = serving();
    // From reference 201, the primary loses one ms in every 12 (8.3%).
    let mut primary = 200;
    let mut fenced_at = None;
    for t in 201..=400 {
        if (t - 200) % 12 != 0 {
            primary += 1;
        }
        if let Some(fault) = node.wake(reading(primary, t, primary)) {
            assert!(matches!(fault, ClockFault::Rate { .. }), "{fault:?}");
            fenced_at = Some(t);
            break;
        }
    }
    // Detected once the primary is CLOCK_READING_SLACK_MS + 1 ms behind: at reference 236.
    assert_eq!(fenced_at, Some(236));
    assert!(node.agent.is_fenced());
}

#[test]
fn a_fault_while_fenced_for_another_reason_tells_nothing_new_but_delays_the_unfence() {
    let mut node = Node::new();
    // Before its first wake-up is handled (still fenced as it starts, LeaseExpired), the
    // primary jumps 20 ms.
    assert_eq!(node.agent.handle_clock(reading(0, 0, 0)), Ok(None));
    assert!(node
        .agent
        .handle_clock(reading(20, 0, 20))
        .unwrap()
        .is_some());
    node.drain(20);
    assert_eq!(node.take_seen(), vec![]);
    // The heartbeat sent at 20 commits at 20, not after the suspicion; the one at 45 does.
    node.agent.handle_timeout(20).unwrap();
    node.drain(20);
    node.honest((1, 110), 20, 20);
    assert_eq!(
        node.take_seen(),
        vec![
            (45, Seen::Decide(Decision::Unfence)),
            (45, Seen::Unfenced),
            (45 + FAST_HANDOFF_MS, a1(activate))
        ]
    );
}

#[test]
fn a_time_out_of_range_is_refused_and_changes_nothing() {
    let mut node = serving();
    let bad = reading(LOCAL_TIME_MS_MAX + 1, 201, 201);
    assert_eq!(
        node.agent.handle_clock(bad),
        Err(InputError::TimeOutOfRange {
            now_ms: LOCAL_TIME_MS_MAX + 1,
            max_ms: LOCAL_TIME_MS_MAX
        })
    );
    assert!(node.agent.may_serve(actor(1), 201));
    node.honest((201, 300), 0, 0);
    assert_eq!(node.take_seen(), vec![]);
}

/// One step of a random clock life: advance each clock by a (possibly huge or zero) amount,
/// or set one to an arbitrary value.
fn clock_step() -> impl Strategy<Value = (u8, u64, u64, u64)> {
    (
        0u8..6,
        prop_oneof![0u64..5, 0u64..500, any::<u64>()],
        prop_oneof![0u64..5, 0u64..500, any::<u64>()],
        prop_oneof![0u64..5, 0u64..500, any::<u64>()],
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// No sequence of clock readings (advancing, stopping, jumping, going back, near
    /// `u64::MAX`) makes the Agent panic, and every reading the watchdog faults leaves the node
    /// fenced and serving nothing.
    #[test]
    fn no_sequence_of_clock_readings_panics_the_agent(
        steps in proptest::collection::vec(clock_step(), 1..200)
    ) {
        let mut node = serving();
        let (mut p, mut r, mut w) = (200u64, 200u64, 200u64);
        for (kind, a, b, c) in steps {
            match kind {
                0..=2 => {
                    p = p.saturating_add(a % 1_000);
                    r = r.saturating_add(b % 1_000);
                    w = w.saturating_add(c % 1_000);
                }
                3 => {
                    p = p.saturating_add(a);
                    r = r.saturating_add(b);
                    w = w.saturating_add(c);
                }
                4 => r = b,
                _ => w = c,
            }
            if let Ok(Some(_)) = node.agent.handle_clock(reading(p, r, w)) {
                prop_assert!(node.agent.is_fenced());
                prop_assert!(node.agent.serving().is_empty());
            }
            // The rest of the wake-up, as a driver runs it (refused inputs are fine).
            if node.agent.handle_timeout(p).is_ok() {
                node.drain(p);
            }
        }
    }
}
