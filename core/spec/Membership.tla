------------------------------ MODULE Membership ------------------------------
(***************************************************************************)
(* Cluster membership: node lifecycle, views, primary election with a      *)
(* fencing term, partitions.                                               *)
(*                                                                         *)
(* One module, three protocols, selected by the constant Mode:             *)
(*   "fixed"      the project's protocol (what production runs);           *)
(*   "reference"  the reference model of REFERENCE.md section 1;           *)
(*   "buggy"      the reference model with BUGGY = TRUE.                   *)
(*                                                                         *)
(* The Rust reducer core/src/step/ mirrors this module action for          *)
(* action and guard for guard: every action below is the `Event` variant   *)
(* of the same name, reduced by the function of step/ named in             *)
(* core/spec/README.md. Guards are written in the order step/ checks       *)
(* them (the order decides only which refusal Rust reports, not whether    *)
(* the action is enabled).                                                 *)
(*                                                                         *)
(* Every place where the fixed protocol deviates from the reference model  *)
(* is marked with a comment starting "DEVIATION" and a short reason; the   *)
(* README lists them all. The changes of registry v2 (quorums over the     *)
(* current members, liveness evidence from each node's own heartbeat,      *)
(* votes that expire with their round, one configuration instead of        *)
(* per-node views) are marked "DEVIATION (registry v2: ...)"; they too     *)
(* change the fixed mode only (each is under                               *)
(* Mode = "fixed", except ResetHeartbeats' clearing of every vote, a       *)
(* no-op in the reference modes). In the reference modes the registry      *)
(* counters term_counter and view_counter stay 0 (every assignment to them *)
(* is under Mode = "fixed") and every detection record detected[n] stays   *)
(* {} (the only action that adds to it, DetectFailure, does so under       *)
(* Mode = "fixed"; every other update only removes nodes from it), so      *)
(* those modes have exactly the reference model's state space.             *)
(*                                                                         *)
(* Actors (placements, the migration queue, activation epochs) are not in  *)
(* the reference model at all: they are the project's EXTENSION, marked    *)
(* "EXTENSION (actors)" below and listed in the README. Every actor action *)
(* requires Mode = "fixed" (Rust: refused with Guard::Disabled in the      *)
(* reference modes), and the actor updates inside membership actions are   *)
(* under Mode = "fixed" too, so in the reference modes `placements` and    *)
(* `queue` stay the empty function and epoch_counter stays 0 (the          *)
(* reference configurations also set Actors = {}).                         *)
(*                                                                         *)
(* Mutants (core/src/switches.rs `Mutant`: elect-without-majority,         *)
(* elect-without-term-increment, no-step-down, fail-without-detection,     *)
(* fail-on-single-detection, fail-keeps-views, no-sync-views,              *)
(* migrate-without-term-check,                                             *)
(* migrate-without-epoch-increase, leave-complete-with-actors,             *)
(* fail-forgets-actors, migrate-requeues, sync-views-keeps-view,           *)
(* step-down-blocked-as-bound, quorum-over-slots, vote-survives-round,     *)
(* heartbeat-by-peer) are a device of the Rust model checker only: each    *)
(* removes or breaks one guard or effect of the fixed protocol (e.g.       *)
(* fail-keeps-views: MarkNodeFailed issues no new configuration number)    *)
(* to show that the checker's properties catch the mistake.                *)
(* They are deliberately NOT part of this specification.                   *)
(*                                                                         *)
(* Node order: Nodes is assumed to be a finite set of naturals, and node   *)
(* order is `<` on them (Rust: NodeId n1 < n2 < ...; the TLC configs use   *)
(* Nodes = {1, 2, 3} for n1, n2, n3). The order is used by the reference   *)
(* HealPartition (lower id steps down), by the fixed HealPartition's tie   *)
(* break (which the fixed protocol never reaches), to write the fairness   *)
(* over unordered pairs, and by RebalanceActors (nodes in id order).       *)
(* Actors likewise is a finite set of naturals, a1 = 1, a2 = 2, ... (Rust  *)
(* ActorId(1), ...); actor order `<` is RebalanceActors' "lowest actor ids *)
(* first".                                                                 *)
(***************************************************************************)
EXTENDS Naturals, FiniteSets

CONSTANTS
    Nodes,     \* the node ids (n1 = 1, n2 = 2, ...)
    MaxView,   \* bound on view numbers and terms: a checking parameter only
    Mode,      \* "fixed", "reference" or "buggy"
    Actors,    \* the actor ids (a1 = 1, a2 = 2, ...); {} in the reference modes
    MaxEpoch,  \* bound on actor epochs: a model-checking parameter only
               \* (Rust Config::max_epoch)
    ActorsMax, \* the most actors placed at once (Rust Config::actors_max)
    Choose(_, _)
    \* The placement strategy (Rust trait actor.rs PlacementStrategy, which the
    \* reducer takes as a parameter: step_with(state, event, strategy); `step`
    \* passes the default, LeastLoaded). Choose(a, load) is the node chosen for
    \* actor a, where `load` is a function from the candidate nodes (the Active
    \* nodes that may take a; never empty when Choose is applied) to their
    \* loads (actors placed on them). The configurations override it with
    \* LeastLoaded, defined below. Like step/ `choose`, the actions accept the
    \* answer only if it is a candidate (otherwise they are not enabled).

ASSUME Nodes \subseteq Nat /\ IsFiniteSet(Nodes) /\ Nodes # {}
\* Rust Config::new refuses max_view = 0: the bootstrap needs view number and term 1.
ASSUME MaxView \in Nat /\ MaxView >= 1
ASSUME Mode \in {"fixed", "reference", "buggy"}
ASSUME Actors \subseteq Nat /\ IsFiniteSet(Actors)
\* Rust Config::with_max_epoch refuses Some(0) (EpochBoundTooSmall) and
\* Config::with_actors_max refuses 0.
ASSUME MaxEpoch \in Nat /\ MaxEpoch >= 1
ASSUME ActorsMax \in Nat /\ ActorsMax >= 1

(***************************************************************************)
(* DEVIATION (bound): in the reference model MaxView is part of the        *)
(* protocol. Here it is only a checking parameter: production runs the     *)
(* fixed protocol with no bound (u64 counters, Rust `max_view = None`,     *)
(* which corresponds to reading every `... <= MaxView` conjunct below as   *)
(* TRUE). Each such conjunct sits exactly where step/ calls                *)
(* `within_bound` / `successor` on the new value: new value <= MaxView.    *)
(* (u64 overflow, refused by `checked_add` in Rust, is not modelled.)      *)
(* The same holds for MaxEpoch, the bound on actor epochs (Rust            *)
(* `max_epoch`, None in production): each `... <= MaxEpoch` conjunct sits  *)
(* where step/ `issue_epoch` checks the new epoch. Terms, bounded by       *)
(* MaxView, also bound the term parameter of the primary's actor actions:  *)
(* Terms below.                                                            *)
(***************************************************************************)

VARIABLES
    state,               \* state[n] \in NodeStates
    view,                \* view[n]: the members n believes are active
    view_number,         \* view_number[n]
    believes_primary,    \* believes_primary[n]
    term,                \* term[n]: the primary term n holds
    heartbeat_received,  \* heartbeat_received[n]
    partitioned,         \* symmetric set of pairs that cannot communicate
    \* DEVIATION (registry counters): the fixed protocol's registry-wide
    \* counters: the highest term ever granted and the highest view number
    \* ever issued. One monotonic term counter makes terms fencing tokens
    \* that never repeat; one view counter makes every view number name
    \* exactly one view (equal numbers mean equal views). Both stay 0 in the
    \* reference modes.
    term_counter,
    view_counter,
    \* DEVIATION (detection records): detected[n] is the set of nodes n has
    \* detected as failed with DetectFailure and not seen again in a view
    \* since (Rust NodeRecord::detected): n's votes. MarkNodeFailed(t) of a
    \* node that still heartbeats requires the votes of a majority of the
    \* current members (Votes, FailureQuorum below): a peer that merely never
    \* heard of t has recorded nothing, and a single detector cut off from
    \* its peers is one vote. DEVIATION (registry v2: votes expire): a vote
    \* belongs to the heartbeat round it was cast in; ResetHeartbeats clears
    \* every record. Always {} in the reference modes, which keep no such
    \* record.
    detected,
    \* EXTENSION (actors), fixed protocol only (the reference model has no
    \* actors; in the reference modes these stay empty and 0):
    \* placements: a function from the placed actors (DOMAIN placements, a
    \* subset of Actors) to [node |-> n, epoch |-> e]: the one node serving
    \* the actor and the epoch of that activation (Rust State::placements).
    placements,
    \* queue: the migration queue, a function from the queued actors to
    \* [from |-> n, reason |-> r]: the node the actor must leave and why
    \* (Rust State::queue, keyed by actor: at most one entry per actor).
    queue,
    \* epoch_counter: the highest actor epoch ever issued (Rust
    \* State::epoch_counter). EXTENSION (epochs from one registry-wide
    \* counter): every activation, placement or move, takes the next value,
    \* so an epoch is never issued twice and a newer activation of an actor
    \* always has a larger epoch than any older one (a fencing token for the
    \* activation, as the term is for the primary).
    epoch_counter

membershipVars == <<state, view, view_number, believes_primary, term,
                    heartbeat_received, partitioned, term_counter,
                    view_counter, detected>>
actorVars == <<placements, queue, epoch_counter>>
vars == <<state, view, view_number, believes_primary, term,
          heartbeat_received, partitioned, term_counter, view_counter,
          detected, placements, queue, epoch_counter>>

NodeStates == {"Left", "Joining", "Active", "Leaving", "Failed"}

\* actor.rs MigrationReason
Reasons == {"NodeFailed", "NodeLeaving", "LoadBalancing"}

-----------------------------------------------------------------------------
(***************************************************************************)
(* Derived notions (core/src/state/).                                      *)
(***************************************************************************)

\* The largest element of a finite set of naturals, 0 for the empty set
\* (Rust: `.max().unwrap_or(0)`).
MaxOf(S) == IF S = {} THEN 0 ELSE CHOOSE x \in S : \A y \in S : x >= y

\* State::active
active == {n \in Nodes : state[n] = "Active"}

(***************************************************************************)
(* State::configuration. DEVIATION (registry v2: one configuration): in    *)
(* the fixed protocol the registry holds ONE current configuration: its    *)
(* members, the Active nodes (the members a majority is counted over,      *)
(* QuorumSize below), and its number, view_counter, which every change of  *)
(* the members advances (Bootstrap, NodeJoinComplete, NodeLeave,           *)
(* MarkNodeFailed), so a configuration number names exactly one set of     *)
(* members. A node's view is the configuration it last adopted: view[n]    *)
(* with number view_number[n], set only by n's own transactions (its       *)
(* bootstrap or join, and SyncViews(n, n)). A change of the members thus   *)
(* writes the changed node's record and the number, never every member's   *)
(* record; the stored form keeps the members as one record (README,        *)
(* "One configuration").                                                   *)
(***************************************************************************)
Configuration == active

\* State::believers
Believers == {n \in Nodes : believes_primary[n]}

\* State::can_communicate
CanCommunicate(a, b) == <<a, b>> \notin partitioned /\ <<b, a>> \notin partitioned

\* State::reachable_active
ReachableActive(n) == {m \in active : m = n \/ CanCommunicate(n, m)}

(***************************************************************************)
(* State::quorum_size: the number of nodes a majority is counted over.     *)
(* DEVIATION (registry v2: quorums over the current members): in the       *)
(* fixed protocol the members are the Active nodes, as the registry holds  *)
(* them now: a Joining node has not been admitted, a Leaving node handed   *)
(* in its vote when it asked to leave, a Failed or Left node is out. The   *)
(* reference modes count every node of the configuration (the registry's   *)
(* slots), so a cluster that scaled down could never reach a majority      *)
(* again (three slots, one member left: never a majority; EventualElection *)
(* below). Every majority (ElectPrimary, ValidPrimary, PrimaryStepDown,    *)
(* the failure quorum, LooksCrashed) is counted over QuorumSize. Why this  *)
(* is safe: README, "Quorums under reconfiguration".                       *)
(***************************************************************************)
QuorumSize == IF Mode = "fixed" THEN Cardinality(active) ELSE Cardinality(Nodes)

\* State::has_majority: a strict majority of the quorum (fixed: of the
\* current members; reference modes: of ALL nodes), never of a view.
HasMajority(n) == 2 * Cardinality(ReachableActive(n)) > QuorumSize

\* State::majority: the fewest nodes that form a strict majority of the
\* quorum (2 * Majority > QuorumSize, the count HasMajority needs).
Majority == QuorumSize \div 2 + 1

\* State::failure_votes: the votes for declaring n failed, i.e. the Active
\* peers that recorded a detection of n and still cannot communicate with it.
Votes(n) == {d \in active \ {n} : n \in detected[d] /\ ~CanCommunicate(d, n)}

\* State::has_failure_quorum (FailureNeedsQuorum): the evidence the fixed
\* MarkNodeFailed(n) needs. DEVIATION (registry v2: own heartbeat): n
\* committed no heartbeat in this round (the registry's own evidence), or
\* the votes of a majority of the current members (a node that still
\* heartbeats but that they cannot reach: the degraded-observer rule).
FailureQuorum(n) == ~heartbeat_received[n] \/ Cardinality(Votes(n)) >= Majority

\* State::max_term: max term over all nodes.
MaxTerm == MaxOf({term[m] : m \in Nodes})

\* State::max_believer_term
MaxBelieverTerm == MaxOf({term[m] : m \in Believers})

\* State::valid_primary: "term[p] is at least the term of every node that
\* believes it is primary" is `term[p] >= MaxBelieverTerm`.
ValidPrimary(p) ==
    /\ believes_primary[p]
    /\ state[p] = "Active"
    /\ HasMajority(p)
    /\ term[p] >= MaxBelieverTerm

\* State::registry_term: the highest term granted so far as the state records
\* it (the reference modes keep no counter).
RegistryTerm ==
    IF Mode = "fixed"
        THEN IF term_counter >= MaxTerm THEN term_counter ELSE MaxTerm
        ELSE MaxTerm

\* State::is_stable / State::is_converged / State::is_stale_primary
Stable == /\ \A n \in Nodes : state[n] \in {"Active", "Left"}
          /\ partitioned = {}
\* Registry v2: fixed, every member has adopted the current configuration
\* (so, by MembershipConsistency, all views are the configuration).
Converged ==
    IF Mode = "fixed"
      THEN \A n \in active : view_number[n] = view_counter
      ELSE \A a, b \in active : view[a] = view[b]
StalePrimary(n) == believes_primary[n] /\ state[n] = "Active" /\ ~HasMajority(n)

(***************************************************************************)
(* step_down (step/) applied to the nodes of S: each stops believing it    *)
(* is primary. DEVIATION (terms cleared on step-down): the fixed protocol  *)
(* also clears the term of each node of S that believed it was primary (a  *)
(* term is held only while primary, so no stale term lingers to be         *)
(* compared or reused); the reference modes keep it.                       *)
(***************************************************************************)
BeliefsAfterStepDown(S) ==
    [m \in Nodes |-> IF m \in S THEN FALSE ELSE believes_primary[m]]
TermsAfterStepDown(S) ==
    [m \in Nodes |-> IF Mode = "fixed" /\ m \in S /\ believes_primary[m]
                         THEN 0
                         ELSE term[m]]

(***************************************************************************)
(* adopt_view (step/) for the nodes of S, which adopt the view v: each     *)
(* drops the members of v from its detection record (a node listed again   *)
(* is no longer suspected by the adopter). DEVIATION (detection records):  *)
(* written for every mode as step/ does, but a no-op in the reference      *)
(* modes, where every record is {}.                                        *)
(***************************************************************************)
DetectedAfterAdopt(S, v) ==
    [m \in Nodes |-> IF m \in S THEN detected[m] \ v ELSE detected[m]]

-----------------------------------------------------------------------------
(***************************************************************************)
(* EXTENSION (actors): derived notions and helpers (core/src/actor.rs,     *)
(* state/, step/). placements and queue are functions whose domain         *)
(* changes (Rust ordered maps keyed by actor).                             *)
(***************************************************************************)

\* The empty table (State::initial).
NoActors == [x \in {} |-> 0]

\* f with k mapped to v (OrdMap::insert) and f without k (OrdMap::remove).
Put(f, k, v) == [x \in DOMAIN f \cup {k} |-> IF x = k THEN v ELSE f[x]]
Drop(f, k) == [x \in DOMAIN f \ {k} |-> f[x]]

\* State::hosted(n): the actors placed on n; State::load(n): their number.
Hosted(n) == {x \in DOMAIN placements : placements[x].node = n}
Load(n) == Cardinality(Hosted(n))

\* step/ candidates(state, except): the Active nodes other than those of
\* `except` ({} or {from}), with their loads: what the strategy chooses from.
Candidates(except) == [m \in active \ except |-> Load(m)]

\* The k lowest elements of a finite set of naturals S (all of S if k >= |S|):
\* Rust `iter().take(k)` over an ordered set.
Lowest(S, k) == {x \in S : Cardinality({y \in S : y < x}) < k}

\* step/ require_primary_term(t), second half: a valid primary holds term t.
PrimaryHolds(t) == \E p \in Nodes : ValidPrimary(p) /\ term[p] = t

\* A valid primary holds the registry's current term: the premise of
\* EventualPlacement and the condition of MigrationByPrimary.
PrimaryInOffice == PrimaryHolds(term_counter)

\* The terms the primary's actor actions are instantiated with (Rust
\* Event::actor_events(actors, max_view): 1..=MaxView). Only t = term_counter
\* is ever enabled and term_counter \in 0..MaxView (TypeOK), so bounding t by
\* MaxView loses no transition; unbounded, Terms is Nat \ {0}.
Terms == 1..MaxView

\* actor.rs REBALANCE_BATCH_MAX: the most actors one RebalanceActors queues.
RebalanceBatchMax == 1024

(***************************************************************************)
(* step/ queue_hosted(n, reason), fixed protocol only: the queue with      *)
(* every actor placed on n queued to leave n for `reason`, except that an  *)
(* actor already queued because its node failed keeps that entry (when     *)
(* `reason` is not NodeFailed itself). So NodeLeave turns a LoadBalancing  *)
(* or NodeLeaving entry into NodeLeaving but keeps a NodeFailed one, and   *)
(* MarkNodeFailed makes every entry of n's actors NodeFailed.              *)
(***************************************************************************)
QueueHosted(n, reason) ==
    LET keep(x) == /\ x \in DOMAIN queue
                   /\ queue[x].reason = "NodeFailed"
                   /\ reason # "NodeFailed"
    IN  [x \in DOMAIN queue \cup Hosted(n) |->
            IF x \in Hosted(n) /\ ~keep(x)
              THEN [from |-> n, reason |-> reason]
              ELSE queue[x]]

(***************************************************************************)
(* The default placement strategy, actor.rs LeastLoaded: the least-loaded  *)
(* candidate; among equally loaded ones, the one with the highest          *)
(* rendezvous hash actor.rs rendezvous(a, n) (SplitMix64's finaliser of    *)
(* a * 0x9E3779B97F4A7C15 + n, 64-bit wrapping arithmetic). The hash is a  *)
(* bijection of a * C + n, so two nodes never tie: the choice is unique.   *)
(* TLC's integers are 32-bit, so the hash is not computed here:            *)
(* RendezvousOrder[a] lists the nodes 1..5 in decreasing order of          *)
(* rendezvous(a, n), for the actors 1..3, as computed from actor.rs (the   *)
(* order among any subset of nodes is the restriction). To check more      *)
(* actors or nodes, extend the table (or override Choose otherwise).       *)
(***************************************************************************)
RendezvousOrder == << <<2, 1, 4, 5, 3>>,    \* a1
                      <<4, 5, 2, 1, 3>>,    \* a2
                      <<1, 4, 3, 2, 5>> >>  \* a3

\* rendezvous(a, n) > rendezvous(a, m)
RendezvousAbove(a, n, m) ==
    \E i, j \in 1..5 : /\ RendezvousOrder[a][i] = n
                      /\ RendezvousOrder[a][j] = m
                      /\ i < j

\* max_by_key((Reverse(load), rendezvous(actor, node))) over the candidates.
LeastLoaded(a, load) ==
    CHOOSE n \in DOMAIN load :
        \A m \in DOMAIN load \ {n} :
            \/ load[n] < load[m]
            \/ load[n] = load[m] /\ RendezvousAbove(a, n, m)

-----------------------------------------------------------------------------
Init ==
    /\ state = [n \in Nodes |-> "Left"]
    /\ view = [n \in Nodes |-> {}]
    /\ view_number = [n \in Nodes |-> 0]
    /\ believes_primary = [n \in Nodes |-> FALSE]
    /\ term = [n \in Nodes |-> 0]
    /\ heartbeat_received = [n \in Nodes |-> FALSE]
    /\ partitioned = {}
    /\ term_counter = 0
    /\ view_counter = 0
    /\ detected = [n \in Nodes |-> {}]
    /\ placements = NoActors
    /\ queue = NoActors
    /\ epoch_counter = 0

-----------------------------------------------------------------------------
(***************************************************************************)
(* The eighteen actions: fourteen membership actions, then (EXTENSION) the *)
(* four actor actions. Every action is one serializable transaction        *)
(* against the shared registry (DESIGN.md): that is how the global guards  *)
(* and the simultaneous updates of several nodes' records below are        *)
(* realised in the real system.                                            *)
(***************************************************************************)

(***************************************************************************)
(* NodeJoin(n) -- step/ node_join.                                         *)
(* n is Left. With no Active node, n bootstraps: Active, view {n},         *)
(* primary. Otherwise n becomes Joining.                                   *)
(* DEVIATION (bootstrap draws from the counters): in the fixed protocol    *)
(* the bootstrap's view number and term are the next values of the         *)
(* registry counters instead of the constant 1, so a re-bootstrapped       *)
(* cluster never reuses term 1 or view number 1.                           *)
(* DEVIATION (registry v2: own heartbeat): in the fixed protocol the       *)
(* bootstrap also sets n's own heartbeat flag: the node's own committed    *)
(* transaction is evidence that it is live in the current round.           *)
(***************************************************************************)
\* step/ bootstrap(n): n becomes Active with view {n} and primary (the
\* bootstrap branch of NodeJoin, and, fixed only, of NodeJoinComplete).
Bootstrap(n) ==
    LET vn == IF Mode = "fixed" THEN view_counter + 1 ELSE 1
        t  == IF Mode = "fixed" THEN term_counter + 1 ELSE 1
    IN  /\ vn <= MaxView
        /\ t <= MaxView
        /\ state' = [state EXCEPT ![n] = "Active"]
        /\ believes_primary' = [believes_primary EXCEPT ![n] = TRUE]
        /\ term' = [term EXCEPT ![n] = t]
        /\ view' = [view EXCEPT ![n] = {n}]
        /\ view_number' = [view_number EXCEPT ![n] = vn]
        \* become_primary / record_view_number: the counters take the
        \* issued values (fixed only).
        /\ term_counter' = IF Mode = "fixed" THEN t ELSE term_counter
        /\ view_counter' = IF Mode = "fixed" THEN vn ELSE view_counter
        /\ detected' = DetectedAfterAdopt({n}, {n})
        /\ heartbeat_received' =
               IF Mode = "fixed"
                 THEN [heartbeat_received EXCEPT ![n] = TRUE]
                 ELSE heartbeat_received
        /\ UNCHANGED partitioned

NodeJoin(n) ==
    /\ state[n] = "Left"
    /\ IF active = {}
         THEN Bootstrap(n)
         ELSE /\ state' = [state EXCEPT ![n] = "Joining"]
              /\ UNCHANGED <<view, view_number, believes_primary, term,
                             heartbeat_received, partitioned,
                             term_counter, view_counter, detected>>
    /\ UNCHANGED actorVars

(***************************************************************************)
(* NodeJoinComplete(n) -- step/ node_join_complete.                        *)
(* n is Joining and can communicate with at least one Active node. Let     *)
(* v = active \cup {n}. n becomes Active; n and every Active node that can *)
(* communicate with n adopt v with one new number; the others keep theirs. *)
(* Reference: number 1 + max view number over active.                      *)
(* DEVIATION (view counter): fixed takes the next registry view number.    *)
(* DEVIATION (registry v2: one configuration): fixed, n alone adopts v:    *)
(* v is the new configuration (Configuration below), its number the next   *)
(* configuration number; every other member adopts it by SyncViews.        *)
(* DEVIATION (registry v2: own heartbeat): fixed also sets n's own         *)
(* heartbeat flag: the node's own committed transaction is evidence that   *)
(* it is live in the current round (otherwise a node that completes its    *)
(* join in a round that is already ripe would be declared failed at once). *)
(* DEVIATION (registry v2: a joiner bootstraps an empty cluster): fixed,   *)
(* when no node is Active, n bootstraps as NodeJoin does (Bootstrap). With *)
(* members lost for good, a cluster whose last member was declared failed  *)
(* while the others were Joining would otherwise never have a member       *)
(* again: a Joining node reaches no Active node, and NodeJoin needs Left.  *)
(***************************************************************************)
\* NodeJoinComplete's admission into a cluster with members.
JoinAdmitted(n) ==
    /\ ReachableActive(n) # {}
    /\ LET vn == IF Mode = "fixed"
                   THEN view_counter + 1
                   ELSE MaxOf({view_number[m] : m \in active}) + 1
           v  == active \cup {n}
           \* DEVIATION (registry v2: one configuration): fixed, only n adopts
           \* the new configuration; the other members adopt it later, each
           \* with its own SyncViews (the stored form writes n's record and
           \* the configuration number, never every member's record).
           adopters == IF Mode = "fixed"
                         THEN {n}
                         ELSE {m \in v : m = n \/ CanCommunicate(n, m)}
       IN  /\ vn <= MaxView
           /\ state' = [state EXCEPT ![n] = "Active"]
           /\ view' = [m \in Nodes |-> IF m \in adopters THEN v ELSE view[m]]
           /\ view_number' = [m \in Nodes |-> IF m \in adopters THEN vn
                                                               ELSE view_number[m]]
           /\ view_counter' = IF Mode = "fixed" THEN vn ELSE view_counter
           /\ detected' = DetectedAfterAdopt(adopters, v)
           /\ heartbeat_received' =
                  IF Mode = "fixed"
                    THEN [heartbeat_received EXCEPT ![n] = TRUE]
                    ELSE heartbeat_received
           /\ UNCHANGED <<believes_primary, term, partitioned, term_counter>>

NodeJoinComplete(n) ==
    /\ state[n] = "Joining"
    /\ IF Mode = "fixed" /\ active = {}
         THEN Bootstrap(n)
         ELSE JoinAdmitted(n)
    /\ UNCHANGED actorVars

(***************************************************************************)
(* NodeLeave(n) -- step/ node_leave.                                       *)
(* n is Active. It becomes Leaving and gives up any primary belief (fixed: *)
(* and the term it held, see TermsAfterStepDown).                          *)
(* EXTENSION (actors): fixed also queues every actor placed on n to leave  *)
(* it, reason NodeLeaving (an actor already queued because its node failed *)
(* keeps that entry: QueueHosted). The node stays Leaving until they have  *)
(* all moved (see NodeLeaveComplete).                                      *)
(* DEVIATION (registry v2: one configuration): n is no longer a member, so *)
(* fixed issues the next configuration number (the bound check first, as   *)
(* step/ issue_view_number); no node adopts it here (SyncViews). n's view  *)
(* is emptied (number 0), as for every node outside the configuration: a   *)
(* non-member holds no configuration (and a Leaving node can no longer     *)
(* adopt one, so a view kept here would only be a stale copy). Likewise    *)
(* its votes are dropped and every vote against it (a Leaving node neither *)
(* votes nor can be declared: Votes counts Active voters, MarkNodeFailed   *)
(* needs an Active target), so NodeLeaveComplete finds nothing to erase.   *)
(***************************************************************************)
NodeLeave(n) ==
    /\ state[n] = "Active"
    /\ Mode = "fixed" => view_counter + 1 <= MaxView
    /\ state' = [state EXCEPT ![n] = "Leaving"]
    /\ believes_primary' = BeliefsAfterStepDown({n})
    /\ term' = TermsAfterStepDown({n})
    /\ view_counter' = IF Mode = "fixed" THEN view_counter + 1 ELSE view_counter
    /\ view' = IF Mode = "fixed" THEN [view EXCEPT ![n] = {}] ELSE view
    /\ view_number' = IF Mode = "fixed" THEN [view_number EXCEPT ![n] = 0]
                                         ELSE view_number
    /\ detected' = IF Mode = "fixed"
                     THEN [m \in Nodes |-> IF m = n THEN {} ELSE detected[m] \ {n}]
                     ELSE detected
    /\ queue' = IF Mode = "fixed" THEN QueueHosted(n, "NodeLeaving") ELSE queue
    /\ UNCHANGED <<heartbeat_received, partitioned,
                   term_counter, placements, epoch_counter>>

(***************************************************************************)
(* NodeLeaveComplete(n) -- step/ node_leave_complete.                      *)
(* n is Leaving. n becomes Left with an empty view; every Active node      *)
(* (whether or not it can communicate with n) adopts `active`, which does  *)
(* not hold n.                                                             *)
(* Reference: each Active node increments its own number (all must stay    *)
(* <= MaxView); n keeps its view number and term.                          *)
(* DEVIATION (registry v2: one configuration): fixed changes no member's   *)
(* view: n left the configuration at NodeLeave, so the configuration and   *)
(* its number stay as they are; n's number is reset to 0 as for every node *)
(* outside the cluster.                                                    *)
(* DEVIATION (detection records): fixed also clears n's own detection      *)
(* record (a node outside the cluster suspects nobody) and erases n from   *)
(* every node's record: a detection of n must not outlive its leaving (if  *)
(* n rejoins, a peer's old record would otherwise count as a detection of  *)
(* the new member, and MarkNodeFailed would accept it).                    *)
(* EXTENSION (leave cannot complete while holding actors): fixed is        *)
(* refused while n still holds actors (Rust Guard::HoldsActors): they were *)
(* queued by NodeLeave and must first be moved by the primary              *)
(* (MigrateActor), so a node that left gracefully never takes an actor     *)
(* with it and no actor is ever placed on a Left node by a graceful leave. *)
(***************************************************************************)
NodeLeaveComplete(n) ==
    /\ state[n] = "Leaving"
    /\ Mode = "fixed" => Load(n) = 0
    /\ IF Mode = "fixed"
         THEN /\ state' = [state EXCEPT ![n] = "Left"]
              /\ view' = [view EXCEPT ![n] = {}]
              /\ view_number' = [view_number EXCEPT ![n] = 0]
              /\ detected' = [m \in Nodes |->
                             IF m = n THEN {} ELSE detected[m] \ {n}]
              /\ UNCHANGED <<believes_primary, term, heartbeat_received,
                             partitioned, term_counter, view_counter>>
         ELSE /\ \A m \in active : view_number[m] + 1 <= MaxView
              /\ state' = [state EXCEPT ![n] = "Left"]
              /\ view' = [m \in Nodes |->
                             IF m = n THEN {}
                             ELSE IF m \in active THEN active
                             ELSE view[m]]
              /\ view_number' = [m \in Nodes |->
                             IF m \in active THEN view_number[m] + 1
                             ELSE view_number[m]]
              /\ detected' = DetectedAfterAdopt(active, active)
              /\ UNCHANGED <<believes_primary, term, heartbeat_received,
                             partitioned, term_counter, view_counter>>
    /\ UNCHANGED actorVars

(***************************************************************************)
(* SendHeartbeat(n) -- step/ send_heartbeat.                               *)
(* n is Active (in every mode). Reference: n and every Active or Leaving   *)
(* node that can communicate with n get heartbeat_received = TRUE.         *)
(* DEVIATION (registry v2: own heartbeat): fixed sets ONLY n's own flag.   *)
(* The evidence that n is live is n's own committed heartbeat (stored as   *)
(* `heartbeat/n = round`, written by n alone); a peer's heartbeat says     *)
(* nothing about n. (The v1 defect: a node cut off from the store but      *)
(* still answering probes kept its flag set by its peers and was never     *)
(* declared failed.)                                                       *)
(***************************************************************************)
SendHeartbeat(n) ==
    /\ state[n] = "Active"
    /\ heartbeat_received' =
           IF Mode = "fixed"
             THEN [heartbeat_received EXCEPT ![n] = TRUE]
             ELSE [m \in Nodes |->
                      IF \/ m = n
                         \/ CanCommunicate(n, m) /\ state[m] \in {"Active", "Leaving"}
                        THEN TRUE
                        ELSE heartbeat_received[m]]
    /\ UNCHANGED <<state, view, view_number, believes_primary, term,
                   partitioned, term_counter, view_counter, detected>>
    /\ UNCHANGED actorVars

(***************************************************************************)
(* DetectFailure(d, t) -- step/ detect_failure.                            *)
(* d # t, both Active, t in d's view, d cannot communicate with t, t's     *)
(* heartbeat was not received. d drops t from its view (keeping itself in  *)
(* it) with a new number: reference view_number[d] + 1.                    *)
(* DEVIATION (registry v2: votes are about reachability): fixed replaces   *)
(* the guard "t's heartbeat was not received" by its opposite, "t's        *)
(* heartbeat was received" (Rust refusal Guard::Silent). A silent t is     *)
(* declared on the registry's own evidence (MarkNodeFailed), with no vote; *)
(* a vote matters only for a t that still heartbeats but that its peers    *)
(* cannot reach, which is exactly where the degraded-observer rule (a      *)
(* majority of votes) applies. (The Agent votes only against peers whose   *)
(* heartbeat of the round is committed; votes against a silent node would  *)
(* only be states that change nothing.)                                    *)
(* DEVIATION (registry v2: one configuration): fixed changes no view: a    *)
(* view is the configuration a node adopted (SyncViews), never a node's    *)
(* private opinion, so DetectFailure(d, t) only records the detection:     *)
(* t \in detected'[d], d's vote for MarkNodeFailed(t), in the current      *)
(* round. A peer that merely never heard of t has recorded nothing, so it  *)
(* cannot count as a detector. This fixes the first half of REFERENCE.md   *)
(* section 2's defect (the guard that confuses "never heard of" with       *)
(* "detected as failed").                                                  *)
(* DEVIATION (one vote per detector): in the fixed protocol the guard "t   *)
(* in d's view" is replaced by "d has not recorded t yet" (Rust refusal    *)
(* Guard::AlreadyDetected): a detector's view may or may not list t (it    *)
(* may predate t's admission), and it votes either way. Without this, a    *)
(* member that synchronised before t was admitted could never vote, and    *)
(* no majority of votes could form (EventualFailureDeclaration).           *)
(***************************************************************************)
DetectFailure(d, t) ==
    /\ d # t
    /\ state[d] = "Active"
    /\ state[t] = "Active"
    /\ IF Mode = "fixed" THEN t \notin detected[d] ELSE t \in view[d]
    /\ ~CanCommunicate(d, t)
    /\ IF Mode = "fixed" THEN heartbeat_received[t] ELSE ~heartbeat_received[t]
    /\ IF Mode = "fixed"
         THEN \* The vote alone (registry v2: one configuration).
              /\ detected' = [detected EXCEPT ![d] = @ \cup {t}]
              /\ UNCHANGED <<view, view_number, view_counter>>
         ELSE LET vn == view_number[d] + 1
                  v  == (view[d] \ {t}) \cup {d}
              IN  /\ vn <= MaxView
                  /\ view' = [view EXCEPT ![d] = v]
                  /\ view_number' = [view_number EXCEPT ![d] = vn]
                  \* adopt_view (a no-op on the reference modes' empty records).
                  /\ detected' = [detected EXCEPT ![d] = @ \ v]
                  /\ UNCHANGED view_counter
    /\ UNCHANGED <<state, believes_primary, term, heartbeat_received,
                   partitioned, term_counter>>
    /\ UNCHANGED actorVars

(***************************************************************************)
(* MarkNodeFailed(n) -- step/ mark_node_failed (guard: failure_quorum).    *)
(* n is Active and detected; it becomes Failed: empty view, view number 0, *)
(* no primary belief, term 0.                                              *)
(* Reference: "detected" is merely "some Active d # n lacks n in its view" *)
(* (also true when d never heard of n: the LeaveDetectionWeak defect).     *)
(* DEVIATION (registry v2: own heartbeat): fixed accepts, first, the       *)
(* registry's own evidence: n committed no heartbeat in this round         *)
(* (~heartbeat_received[n]; only n's own transactions set its flag). A     *)
(* node that stopped committing (crash, pause, lost store) is declared     *)
(* whatever probes say, and no other node, storeless or isolated, can keep *)
(* the declaration from happening.                                         *)
(* DEVIATION (detection guard): otherwise (n still heartbeats) fixed       *)
(* requires that some Active d # n has RECORDED a detection of n           *)
(* (n \in detected[d]: DetectFailure(d, n) happened in this round and      *)
(* since then d has adopted no view listing n, n was not marked failed and *)
(* d did not leave the cluster) and still cannot communicate with n. A     *)
(* peer that merely never heard of n has recorded nothing, so it cannot    *)
(* get n declared failed: this fixes the first half of REFERENCE.md        *)
(* section 2's defect.                                                     *)
(* DEVIATION (failure quorum): and the votes, Votes(n), the Active peers   *)
(* that recorded a detection of n and cannot communicate with it, are at   *)
(* least Majority: DEVIATION (registry v2: quorums over the current        *)
(* members) a strict majority of the current members (QuorumSize), the     *)
(* majority of HasMajority. One recorded detection is not enough: a        *)
(* degraded observer (a node cut off from every peer but still reaching    *)
(* the registry) would otherwise get healthy peers declared failed one by  *)
(* one, after which no node has a majority and the cluster is              *)
(* unavailable. A node that reaches no majority, and the nodes of any      *)
(* minority of the members, contribute fewer votes than Majority: a        *)
(* minority cannot vote a member out and so make itself a majority. With   *)
(* two members a peer that still heartbeats cannot be voted out (two votes *)
(* needed, one peer), but a silent one is declared on the evidence.        *)
(* Guards in Rust's order: the heartbeat (when it was not received, the    *)
(* guard holds); else some detector at all (Guard::Undetected), one of     *)
(* them cut off from n (Guard::CanCommunicate), a majority of votes        *)
(* (Guard::NoFailureQuorum).                                               *)
(* DEVIATION (registry v2: one configuration): n is no longer a member:    *)
(* fixed issues the next configuration number (the bound check first);     *)
(* the members adopt the configuration without n by SyncViews, each in     *)
(* its own transaction, so the declaration writes n's record and the       *)
(* number, never every member's record. n is fenced (the Rust effect       *)
(* Fenced: it stops serving; in the state, its primary belief and term are *)
(* dropped).                                                               *)
(* EXTENSION (failure handling queues the actors): in the same one atomic  *)
(* transition every actor placed on n is queued to leave n with reason     *)
(* NodeFailed (QueueHosted; an existing entry, of any reason, becomes      *)
(* NodeFailed). The fenced node's activations are thus never forgotten:    *)
(* each stays placed on n, queued, until the primary moves it              *)
(* (MigrateActor) or it is removed; this is what SingleActivation allows   *)
(* for a Failed (later Left, Joining, even Active again) node.             *)
(* DEVIATION (detection records): the detection is consumed: n's own       *)
(* record is cleared and n is removed from every node's record. Written    *)
(* for every mode as step/ does; a no-op in the reference modes.           *)
(***************************************************************************)
MarkNodeFailed(n) ==
    /\ state[n] = "Active"
    /\ IF Mode = "fixed"
         THEN \* failure_quorum(n): the registry's evidence, or else
              \* detected_by(n), then the votes
              \/ ~heartbeat_received[n]
              \/ LET detectors == {d \in active \ {n} : n \in detected[d]}
                 IN  /\ detectors # {}
                     /\ \E d \in detectors : ~CanCommunicate(d, n)
                     /\ Cardinality(Votes(n)) >= Majority
         ELSE \E d \in active \ {n} : n \notin view[d]
    /\ LET vn == view_counter + 1
       IN  /\ Mode = "fixed" => vn <= MaxView
           /\ state' = [state EXCEPT ![n] = "Failed"]
           \* step_down(n) then term := 0 in every mode, so term'[n] = 0.
           /\ believes_primary' = [believes_primary EXCEPT ![n] = FALSE]
           /\ term' = [term EXCEPT ![n] = 0]
           /\ view' = [view EXCEPT ![n] = {}]
           /\ view_number' = [view_number EXCEPT ![n] = 0]
           /\ view_counter' = IF Mode = "fixed" THEN vn ELSE view_counter
           /\ detected' = [m \in Nodes |->
                          IF m = n THEN {} ELSE detected[m] \ {n}]
           /\ queue' = IF Mode = "fixed" THEN QueueHosted(n, "NodeFailed")
                                          ELSE queue
           /\ UNCHANGED <<heartbeat_received, partitioned, term_counter,
                          placements, epoch_counter>>

(***************************************************************************)
(* NodeRecover(n) -- step/ node_recover.                                   *)
(* n is Failed. It becomes Left: empty view, view number 0, term 0.        *)
(* (Registry v2: v1's recover guard, "no Active view lists n", is gone: n  *)
(* left the configuration when it was declared, and a member that has not  *)
(* synchronised since may still list it: LeaveDetectionWeak.)              *)
(* n's detection record is cleared (already {} after MarkNodeFailed; as in *)
(* step/, written for every mode). Its actors, queued with reason          *)
(* NodeFailed by MarkNodeFailed, stay placed on it and queued.             *)
(***************************************************************************)
NodeRecover(n) ==
    /\ state[n] = "Failed"
    /\ state' = [state EXCEPT ![n] = "Left"]
    /\ view' = [view EXCEPT ![n] = {}]
    /\ view_number' = [view_number EXCEPT ![n] = 0]
    /\ term' = [term EXCEPT ![n] = 0]
    /\ detected' = [detected EXCEPT ![n] = {}]
    /\ UNCHANGED <<believes_primary, heartbeat_received, partitioned,
                   term_counter, view_counter>>
    /\ UNCHANGED actorVars

(***************************************************************************)
(* ElectPrimary(n) -- step/ elect_primary.                                 *)
(* n does not believe it is primary, is Active, has a majority, and no     *)
(* node anywhere has a valid primary claim; n becomes primary.             *)
(* Reference: term 1 + max term over all nodes.                            *)
(* Buggy (REFERENCE.md section 1, action 9): the majority and              *)
(* no-valid-primary guards are dropped, and NO TERM IS GRANTED: n keeps    *)
(* exactly the term it has (often 0), with no bound check.                 *)
(* DEVIATION (registry term counter): fixed takes the next registry term,  *)
(* never reused even after resets of node terms.                           *)
(* DEVIATION (election demotes superseded primaries): fixed demotes, in    *)
(* the same transition, every other node that still believes it is         *)
(* primary (stale primaries that lost their majority), clearing their      *)
(* terms, so at most one node ever believes it is primary.                 *)
(***************************************************************************)
ElectPrimary(n) ==
    /\ ~believes_primary[n]
    /\ state[n] = "Active"
    /\ Mode # "buggy" => HasMajority(n)
    /\ Mode # "buggy" => \A p \in Nodes : ~ValidPrimary(p)
    /\ LET t == CASE Mode = "fixed"     -> term_counter + 1
                  [] Mode = "reference" -> MaxTerm + 1
                  [] Mode = "buggy"     -> term[n]
       IN  /\ Mode # "buggy" => t <= MaxView
           /\ IF Mode = "fixed"
                THEN /\ believes_primary' =
                            [BeliefsAfterStepDown(Believers) EXCEPT ![n] = TRUE]
                     /\ term' = [TermsAfterStepDown(Believers) EXCEPT ![n] = t]
                     /\ term_counter' = t   \* max(term_counter, t) = t
                ELSE /\ believes_primary' = [believes_primary EXCEPT ![n] = TRUE]
                     /\ term' = [term EXCEPT ![n] = t]
                     /\ UNCHANGED term_counter
           /\ UNCHANGED <<state, view, view_number, heartbeat_received,
                          partitioned, view_counter, detected>>
    /\ UNCHANGED actorVars

(***************************************************************************)
(* PrimaryStepDown(n) -- step/ primary_step_down.                          *)
(* n believes it is primary, is Active, and has no majority; it stops      *)
(* believing (fixed: and its term is cleared). Disabled in buggy mode.     *)
(***************************************************************************)
PrimaryStepDown(n) ==
    /\ Mode # "buggy"
    /\ believes_primary[n]
    /\ state[n] = "Active"
    /\ ~HasMajority(n)
    /\ believes_primary' = BeliefsAfterStepDown({n})
    /\ term' = TermsAfterStepDown({n})
    /\ UNCHANGED <<state, view, view_number, heartbeat_received, partitioned,
                   term_counter, view_counter, detected>>
    /\ UNCHANGED actorVars

(***************************************************************************)
(* CreatePartition(a, b) -- step/ create_partition. Identical in all       *)
(* modes. a # b, not yet partitioned: both orderings are added.            *)
(***************************************************************************)
CreatePartition(a, b) ==
    /\ a # b
    /\ CanCommunicate(a, b)
    /\ partitioned' = partitioned \cup {<<a, b>>, <<b, a>>}
    /\ UNCHANGED <<state, view, view_number, believes_primary, term,
                   heartbeat_received, term_counter, view_counter, detected>>
    /\ UNCHANGED actorVars

(***************************************************************************)
(* HealPartition(a, b) -- step/ heal_partition.                            *)
(* a and b are partitioned: both orderings are removed. Outside buggy      *)
(* mode, if both (now communicating) believe they are primary, one steps   *)
(* down. Reference: the one with the lower node id.                        *)
(* DEVIATION (heal by term): fixed steps down the one with the LOWER TERM  *)
(* (the superseded primary keeps no authority over the newer one; ties,    *)
(* which the fixed protocol never produces, by lower node id), and clears  *)
(* its term.                                                               *)
(***************************************************************************)
HealPartition(a, b) ==
    /\ ~CanCommunicate(a, b)
    /\ partitioned' = partitioned \ {<<a, b>>, <<b, a>>}
    /\ IF Mode # "buggy" /\ believes_primary[a] /\ believes_primary[b]
         THEN LET loser ==
                    IF Mode = "fixed"
                      THEN IF \/ term[a] < term[b]
                              \/ term[a] = term[b] /\ a < b
                             THEN a ELSE b
                      ELSE IF a < b THEN a ELSE b
              IN  /\ believes_primary' = BeliefsAfterStepDown({loser})
                  /\ term' = TermsAfterStepDown({loser})
         ELSE UNCHANGED <<believes_primary, term>>
    /\ UNCHANGED <<state, view, view_number, heartbeat_received,
                   term_counter, view_counter, detected>>
    /\ UNCHANGED actorVars

(***************************************************************************)
(* ResetHeartbeats -- step/ reset_heartbeats. Always enabled (a stuttering *)
(* step when every flag is already FALSE and no vote is recorded): a       *)
(* heartbeat interval passes, a new round opens.                           *)
(* DEVIATION (registry v2: votes expire): every vote is cleared too; a     *)
(* vote belongs to the round it was cast in and expires with it (the v1    *)
(* defect: a vote cast in one round still counted after its target had     *)
(* heartbeated again). Written for every mode, as step/ does; a no-op in   *)
(* the reference modes, where every record is {}.                          *)
(***************************************************************************)
ResetHeartbeats ==
    /\ heartbeat_received' = [n \in Nodes |-> FALSE]
    /\ detected' = [m \in Nodes |-> {}]
    /\ UNCHANGED <<state, view, view_number, believes_primary, term,
                   partitioned, term_counter, view_counter>>
    /\ UNCHANGED actorVars

(***************************************************************************)
(* SyncViews(a, b) -- step/ sync_views.                                    *)
(* Reference: a # b, both Active, can communicate, view numbers differ.    *)
(* Both adopt the view of the node with the larger number, united with     *)
(* {a, b}, with a new number h + 1 where h is the larger number            *)
(* (SyncPeers). SyncViews(a, b) and SyncViews(b, a) are the same           *)
(* transition.                                                             *)
(* DEVIATION (registry v2: one configuration): in the fixed protocol a     *)
(* node synchronises with the registry, not with a peer: SyncViews(n, n)   *)
(* (Rust refuses a # b with Guard::PeerSync). n is Active and has not      *)
(* adopted the current configuration (view_number[n] < view_counter): it   *)
(* adopts it, Configuration with number view_counter. No number is         *)
(* issued, so a synchronisation is never refused by the bound, and the     *)
(* detection records are left alone (a vote expires with its round, not    *)
(* when its voter adopts a configuration that still lists the suspect).    *)
(* The stored form writes n's own record only.                             *)
(***************************************************************************)
\* The reference SyncViews(a, b).
SyncPeers(a, b) ==
    /\ a # b
    /\ state[a] = "Active"
    /\ state[b] = "Active"
    /\ CanCommunicate(a, b)
    /\ view_number[a] # view_number[b]
    /\ LET newer == IF view_number[a] > view_number[b] THEN a ELSE b
           vn    == view_number[newer] + 1
           v     == view[newer] \cup {a, b}
       IN  /\ vn <= MaxView
           /\ view' = [view EXCEPT ![a] = v, ![b] = v]
           /\ view_number' = [view_number EXCEPT ![a] = vn, ![b] = vn]
           /\ detected' = DetectedAfterAdopt({a, b}, v)
           /\ UNCHANGED <<state, believes_primary, term, heartbeat_received,
                          partitioned, term_counter, view_counter>>
    /\ UNCHANGED actorVars

SyncViews(a, b) ==
    IF Mode = "fixed"
      THEN /\ a = b
           /\ state[a] = "Active"
           /\ view_number[a] < view_counter
           /\ view' = [view EXCEPT ![a] = Configuration]
           /\ view_number' = [view_number EXCEPT ![a] = view_counter]
           /\ UNCHANGED <<state, believes_primary, term, heartbeat_received,
                          partitioned, term_counter, view_counter, detected>>
           /\ UNCHANGED actorVars
      ELSE SyncPeers(a, b)

-----------------------------------------------------------------------------
(***************************************************************************)
(* EXTENSION (actors): the four actor actions (step/ place_actor,          *)
(* migrate_actor, rebalance_actors, remove_actor). Each first requires     *)
(* Mode = "fixed" (step/ require_fixed; Rust refuses them in the           *)
(* reference modes with Guard::Disabled): the reference model has no       *)
(* actors. None changes a membership variable.                             *)
(*                                                                         *)
(* step/ migrate_batch is NOT an action of this spec: it is a              *)
(* composition of consecutive MigrateActor(a, t) steps under one term t    *)
(* (the lowest queued actor ids first, at most MIGRATION_BATCH_MAX,        *)
(* stopping at the first refusal after one move), committed as one         *)
(* transaction. Every state it produces is reached here by that sequence   *)
(* of MigrateActor steps, so the spec's properties cover it; the spec      *)
(* also allows other actions between the steps, which the single           *)
(* transaction does not.                                                   *)
(***************************************************************************)

(***************************************************************************)
(* PlaceActor(a) -- step/ place_actor.                                     *)
(* a is not placed (Guard::AlreadyPlaced) and fewer than ActorsMax actors  *)
(* are (Guard::RegistryFull); the strategy chooses an Active node          *)
(* (Guard::NoTarget when there is none), and a is placed there with the    *)
(* next epoch of the registry counter (the bound check last, as            *)
(* issue_epoch: Guard::BoundReached). a has no queue entry                 *)
(* (MigrationQueueBounded), so the queue is unchanged (Rust put_actor      *)
(* would drop one).                                                        *)
(***************************************************************************)
PlaceActor(a) ==
    /\ Mode = "fixed"
    /\ a \notin DOMAIN placements
    /\ Cardinality(DOMAIN placements) < ActorsMax
    /\ LET cs     == Candidates({})
           target == Choose(a, cs)
           e      == epoch_counter + 1
       IN  /\ DOMAIN cs # {}
           /\ target \in DOMAIN cs
           /\ e <= MaxEpoch
           /\ placements' = Put(placements, a, [node |-> target, epoch |-> e])
           /\ epoch_counter' = e
    /\ UNCHANGED <<queue, membershipVars>>

(***************************************************************************)
(* MigrateActor(a, t) -- step/ migrate_actor.                              *)
(* a is queued (Guard::NotQueued); EXTENSION (migration only by the        *)
(* primary, fenced by its term): t is the registry's current term          *)
(* (Guard::StaleTerm) and a valid primary holds it (Guard::NoValidPrimary; *)
(* step/ require_primary_term), so a deposed or superseded primary,        *)
(* whose term is stale, can never move an actor; a is placed               *)
(* (Guard::NotPlaced; always true when queued); the strategy chooses an    *)
(* Active node other than the one a must leave (Guard::NoTarget); a moves  *)
(* there with the next epoch (bound check last) and leaves the queue.      *)
(* The old activation ends (Rust effect ActorDeactivated with its epoch),  *)
(* the new one has a larger epoch, so a late message of the old one is     *)
(* recognisably stale.                                                     *)
(* DEVIATION (registry v2: the last member takes its actors back): when    *)
(* no Active node other than the one a leaves is left, that node, if       *)
(* Active, takes a again with the next epoch. With quorums over the        *)
(* members, a cluster scaled down to one member has a primary in office,   *)
(* so without this an actor queued to leave the last member (a rebalance   *)
(* entry once the other nodes left, or a failed node's actors once it      *)
(* recovered and rejoined, its old activation fenced when it was declared) *)
(* would stay queued forever (EventualPlacement).                          *)
(***************************************************************************)
MigrateActor(a, t) ==
    /\ Mode = "fixed"
    /\ a \in DOMAIN queue
    /\ t = term_counter
    /\ PrimaryHolds(t)
    /\ a \in DOMAIN placements
    /\ LET others == Candidates({queue[a].from})
           cs     == IF DOMAIN others # {} THEN others ELSE Candidates({})
           target == Choose(a, cs)
           e      == epoch_counter + 1
       IN  /\ DOMAIN cs # {}
           /\ target \in DOMAIN cs
           /\ e <= MaxEpoch
           /\ placements' = [placements EXCEPT ![a] = [node |-> target,
                                                        epoch |-> e]]
           /\ queue' = Drop(queue, a)
           /\ epoch_counter' = e   \* max(epoch_counter, e) = e
    /\ UNCHANGED membershipVars

(***************************************************************************)
(* RebalanceActors(t) -- step/ rebalance_actors.                           *)
(* t is the current term held by a valid primary (as MigrateActor). The    *)
(* balanced share is the total load of the Active nodes over their number, *)
(* rounded up. Each Active node, in node-id order, whose actors not yet    *)
(* queued ("staying") exceed the share has its excess queued with reason   *)
(* LoadBalancing, lowest actor ids first, at most RebalanceBatchMax actors *)
(* in all (a node gets what is left of the budget after the nodes before   *)
(* it; Before(n) is what they would take without the budget, so the budget *)
(* left for n is RebalanceBatchMax - Before(n) when positive: closed form  *)
(* of step/'s running `budget`). Refused when nothing is queued            *)
(* (Guard::Balanced). Placements and epochs are unchanged: the queued      *)
(* actors are moved later by MigrateActor.                                 *)
(***************************************************************************)
RebalanceActors(t) ==
    /\ Mode = "fixed"
    /\ t = term_counter
    /\ PrimaryHolds(t)
    /\ LET total      == Cardinality({x \in DOMAIN placements :
                                         placements[x].node \in active})
           k          == IF active = {} THEN 1 ELSE Cardinality(active)
           share      == (total + k - 1) \div k
           Staying(n) == Hosted(n) \ DOMAIN queue
           Excess(n)  == IF Cardinality(Staying(n)) > share
                           THEN Cardinality(Staying(n)) - share
                           ELSE 0
           Before(n)  == Cardinality(UNION {Lowest(Staying(m), Excess(m)) :
                                             m \in {q \in active : q < n}})
           Budget(n)  == IF Before(n) < RebalanceBatchMax
                           THEN RebalanceBatchMax - Before(n)
                           ELSE 0
           Take(n)    == IF Excess(n) < Budget(n) THEN Excess(n) ELSE Budget(n)
           moved      == UNION {Lowest(Staying(n), Take(n)) : n \in active}
       IN  /\ moved # {}
           /\ queue' = [x \in DOMAIN queue \cup moved |->
                          IF x \in moved
                            THEN [from |-> placements[x].node,
                                  reason |-> "LoadBalancing"]
                            ELSE queue[x]]
    /\ UNCHANGED <<placements, epoch_counter, membershipVars>>

(***************************************************************************)
(* RemoveActor(a) -- step/ remove_actor.                                   *)
(* a is placed (Guard::NotPlaced); the application is done with it: it is  *)
(* deactivated and forgotten, with its queue entry. The epoch counter      *)
(* keeps its value (a later PlaceActor(a) gets a new, larger epoch).       *)
(***************************************************************************)
RemoveActor(a) ==
    /\ Mode = "fixed"
    /\ a \in DOMAIN placements
    /\ placements' = Drop(placements, a)
    /\ queue' = Drop(queue, a)
    /\ UNCHANGED <<epoch_counter, membershipVars>>

-----------------------------------------------------------------------------
\* Event::all lists the same instances (symmetric pairs once, a < b), and
\* Event::actor_events(actors, MaxView) the actor actions' instances.
Next ==
    \/ \E n \in Nodes :
          \/ NodeJoin(n)
          \/ NodeJoinComplete(n)
          \/ NodeLeave(n)
          \/ NodeLeaveComplete(n)
          \/ SendHeartbeat(n)
    \/ \E d, t \in Nodes : DetectFailure(d, t)
    \/ \E n \in Nodes :
          \/ MarkNodeFailed(n)
          \/ NodeRecover(n)
          \/ ElectPrimary(n)
          \/ PrimaryStepDown(n)
    \/ \E a, b \in Nodes : CreatePartition(a, b) \/ HealPartition(a, b)
    \/ ResetHeartbeats
    \/ \E a, b \in Nodes : SyncViews(a, b)
    \/ \E a \in Actors : PlaceActor(a) \/ RemoveActor(a)
    \/ \E t \in Terms :
          \/ \E a \in Actors : MigrateActor(a, t)
          \/ RebalanceActors(t)

\* invariants/ fair_events: weak fairness of SyncViews(a, b) for every pair
\* a <= b (the two orderings are the same action; a < b are the reference
\* modes' instances, a = b the fixed protocol's; the others are never
\* enabled, so their fairness is vacuous), of
\* PrimaryStepDown(n) for every n, and (EXTENSION) of MigrateActor(a, t) for
\* every actor a and term t in Terms.
Fairness ==
    /\ \A a \in Nodes : \A b \in {m \in Nodes : a <= m} : WF_vars(SyncViews(a, b))
    /\ \A n \in Nodes : WF_vars(PrimaryStepDown(n))
    /\ \A a \in Actors : \A t \in Terms : WF_vars(MigrateActor(a, t))

Spec == Init /\ [][Next]_vars /\ Fairness

-----------------------------------------------------------------------------
(***************************************************************************)
(* State invariants (core/src/invariants/).                                *)
(***************************************************************************)

\* type_ok. The counter conjuncts are implied in Rust (u64, only ever set to
\* an issued value, which passed the bound check). So are the actor
\* conjuncts, which Rust type_ok does not check: the types give ActorId,
\* NodeId, MigrationReason and u64 fields and one entry per key; a placement's
\* node is always a node of the configuration (an Active one when chosen) and
\* its epoch an issued one (>= 1, passed the MaxEpoch check).
TypeOK ==
    /\ state \in [Nodes -> NodeStates]
    /\ view \in [Nodes -> SUBSET Nodes]
    /\ view_number \in [Nodes -> 0..MaxView]
    /\ believes_primary \in [Nodes -> BOOLEAN]
    /\ term \in [Nodes -> 0..MaxView]
    /\ heartbeat_received \in [Nodes -> BOOLEAN]
    /\ partitioned \subseteq Nodes \X Nodes
    /\ \A a, b \in Nodes : <<a, b>> \in partitioned => <<b, a>> \in partitioned
    /\ \A a \in Nodes : <<a, a>> \notin partitioned
    /\ term_counter \in 0..MaxView
    /\ view_counter \in 0..MaxView
    /\ detected \in [Nodes -> SUBSET Nodes]
    \* A node never suspects itself. (Registry v2: a member may suspect a
    \* member of its own view: a view is a configuration, a vote is about
    \* reachability in this round.)
    /\ \A n \in Nodes : n \notin detected[n]
    \* Fixed: every node's term and view number was issued by the registry.
    /\ Mode = "fixed" =>
           \A n \in Nodes : term[n] <= term_counter /\ view_number[n] <= view_counter
    \* EXTENSION (actors).
    /\ epoch_counter \in 0..MaxEpoch
    /\ DOMAIN placements \subseteq Actors
    /\ \A x \in DOMAIN placements :
           placements[x] \in [node : Nodes, epoch : 1..MaxEpoch]
    /\ DOMAIN queue \subseteq Actors
    /\ \A x \in DOMAIN queue : queue[x] \in [from : Nodes, reason : Reasons]

\* membership_consistency. Registry v2 (restated for one configuration):
\* fixed, also every member's view is a configuration the registry issued
\* (its number is at most the current one: TypeOK), and a member that has
\* adopted the current number holds exactly the current members.
MembershipConsistency ==
    /\ \A a, b \in active :
           (b \in view[a] /\ a \in view[b] /\ view_number[a] = view_number[b])
               => view[a] = view[b]
    /\ Mode = "fixed" =>
           \A n \in active : view_number[n] = view_counter => view[n] = Configuration

\* join_atomicity
JoinAtomicity ==
    \A n \in Nodes :
        /\ state[n] = "Active" => view[n] # {}
        /\ state[n] \in {"Joining", "Left", "Failed"} => view[n] = {}
        \* a Leaving node may have any view

\* leave_detection_weak. Registry v2 (restated for one configuration):
\* fixed, a Left node may still be listed only by a member that has not yet
\* adopted the current configuration (which never lists it).
LeaveDetectionWeak ==
    \A n \in Nodes : state[n] = "Left" =>
        \A m \in active :
            n \in view[m] => Mode = "fixed" /\ view_number[m] < view_counter

\* no_split_brain
NoSplitBrain ==
    \A p, q \in Nodes : ValidPrimary(p) /\ ValidPrimary(q) => p = q

\* at_most_one_primary (project invariant; holds in the fixed protocol only)
AtMostOnePrimary ==
    \A p, q \in Nodes : believes_primary[p] /\ believes_primary[q] => p = q

\* single_activation (EXTENSION): every placed actor is on exactly one node
\* (placements is a function; Rust also checks its per-node index against
\* it), and that node is Active, or the actor is queued to leave it: from a
\* Leaving node for any reason, from a Failed, Left or Joining node only
\* because the node failed (a node that left gracefully handed all its actors
\* over first).
SingleActivation ==
    \A x \in DOMAIN placements :
        LET n       == placements[x].node
            leaving == x \in DOMAIN queue /\ queue[x].from = n
        IN  CASE state[n] = "Active"  -> TRUE
              [] state[n] = "Leaving" -> leaving
              [] OTHER -> leaving /\ queue[x].reason = "NodeFailed"

\* migration_queue_bounded (EXTENSION): every queue entry names the node its
\* actor is placed on (so at most one entry per placed actor), and at most
\* ActorsMax actors are placed.
MigrationQueueBounded ==
    /\ Cardinality(DOMAIN placements) <= ActorsMax
    /\ \A x \in DOMAIN queue :
           x \in DOMAIN placements /\ queue[x].from = placements[x].node

(***************************************************************************)
(* Transition properties (invariants/, checked on every step): the         *)
(* step predicates, then the action properties [][P]_vars.                 *)
(***************************************************************************)

\* fencing_term_monotonic: the registry's term never decreases, and a node
\* that newly holds a primary term (newly believes, or believes with a
\* changed term) holds one above every term granted before the step.
FencingTermMonotonicStep ==
    /\ RegistryTerm' >= RegistryTerm
    /\ \A n \in Nodes :
           (believes_primary'[n] /\ (~believes_primary[n] \/ term[n] # term'[n]))
               => term'[n] > RegistryTerm

\* minority_cannot_elect: a node that newly believes it is primary has a
\* majority after the step, unless no node was Active before it (bootstrap).
MinorityCannotElectStep ==
    \/ active = {}
    \/ \A n \in Nodes :
           (believes_primary'[n] /\ ~believes_primary[n]) => HasMajority(n)'

\* failure_requires_detection: a node going from Active to Failed had, before
\* the step, evidence of failure: an unreceived heartbeat (the registry's own
\* evidence: it committed no heartbeat this round), or an Active detector
\* d # n that had recorded a detection of it (n \in detected[d]) and could
\* not communicate with it. (Merely lacking n in its view is not evidence: d
\* may never have heard of n.) The reference modes record no detection and do
\* not look at the heartbeat, so there a MarkNodeFailed of a node whose
\* heartbeat was received violates this property.
FailureRequiresDetectionStep ==
    \A n \in Nodes :
        (state[n] = "Active" /\ state'[n] = "Failed")
            => \/ ~heartbeat_received[n]
               \/ \E d \in active \ {n} : n \in detected[d] /\ ~CanCommunicate(d, n)

\* failure_needs_quorum: a node going from Active to Failed had, before the
\* step, an unreceived heartbeat or the votes of a majority of the current
\* members (FailureQuorum): Active peers that had recorded a detection of it
\* and could not communicate with it. Stronger than FailureRequiresDetection
\* (one such peer). Every vote comes from a node that cannot reach n, so no
\* minority of the members, and no single observer cut off from its peers,
\* can get a node that still heartbeats declared failed. The reference modes
\* record no detection: there a MarkNodeFailed of a node whose heartbeat was
\* received violates this property too.
FailureNeedsQuorumStep ==
    \A n \in Nodes :
        (state[n] = "Active" /\ state'[n] = "Failed") => FailureQuorum(n)

\* epoch_monotonic (EXTENSION): the epoch counter never decreases; an actor
\* placed before and after the step keeps or raises its epoch, and raises it
\* whenever it moves; a newly placed actor gets an epoch above every epoch
\* issued before.
EpochMonotonicStep ==
    /\ epoch_counter' >= epoch_counter
    /\ \A x \in DOMAIN placements' :
           IF x \in DOMAIN placements
             THEN /\ placements'[x].epoch >= placements[x].epoch
                  /\ placements'[x].node # placements[x].node
                         => placements'[x].epoch > placements[x].epoch
             ELSE placements'[x].epoch > epoch_counter

\* migration_by_primary (EXTENSION): an actor moves from one node to another
\* only in a step taken while a valid primary holds the registry's current
\* term.
MigrationByPrimaryStep ==
    \/ PrimaryInOffice
    \/ \A x \in DOMAIN placements \cap DOMAIN placements' :
           placements'[x].node = placements[x].node

\* own_heartbeat (registry v2): no step sets the heartbeat flags of two
\* nodes: each node's heartbeat is its own (only n's own transactions,
\* SendHeartbeat(n) and, fixed, its bootstrap or join completion, set
\* n's flag). Violated in the reference modes, where SendHeartbeat sets
\* the flags of the sender's peers.
OwnHeartbeatStep ==
    \A a, b \in Nodes :
        (/\ ~heartbeat_received[a] /\ heartbeat_received'[a]
         /\ ~heartbeat_received[b] /\ heartbeat_received'[b]) => a = b

\* votes_expire_with_round (registry v2): a step that opens a new round
\* (clears some node's heartbeat flag) leaves no vote. Holds in every mode
\* (the reference modes record no vote at all).
VotesExpireWithRoundStep ==
    (\E n \in Nodes : heartbeat_received[n] /\ ~heartbeat_received'[n])
        => \A n \in Nodes : detected'[n] = {}

FencingTermMonotonic     == [][FencingTermMonotonicStep]_vars
MinorityCannotElect      == [][MinorityCannotElectStep]_vars
FailureRequiresDetection == [][FailureRequiresDetectionStep]_vars
FailureNeedsQuorum       == [][FailureNeedsQuorumStep]_vars
EpochMonotonic           == [][EpochMonotonicStep]_vars
MigrationByPrimary       == [][MigrationByPrimaryStep]_vars
OwnHeartbeat             == [][OwnHeartbeatStep]_vars
VotesExpireWithRound     == [][VotesExpireWithRoundStep]_vars

(***************************************************************************)
(* Liveness (invariants/ `Liveness`): no fair behaviour stays forever in   *)
(* the set Trapped, i.e. []<>~Trapped, under Fairness.                     *)
(* NB: under a finite MaxView, a violation can be an artefact of the bound *)
(* (reference modes: SyncViews disabled because the next number would      *)
(* exceed MaxView; for EventualFailureDeclaration a DetectFailure that     *)
(* would exceed it; fixed: a MarkNodeFailed whose new configuration number *)
(* would exceed it).                                                       *)
(* Likewise under a finite MaxEpoch (MigrateActor disabled because the     *)
(* next epoch would exceed MaxEpoch).                                      *)
(***************************************************************************)

\* Trapped = Stable /\ ~Converged: once the cluster is stable (every node
\* Active or Left, nothing partitioned), all Active nodes eventually share
\* one view (fixed, registry v2: every member eventually adopts the current
\* configuration).
EventualMembershipConvergence == []<>~(Stable /\ ~Converged)

\* Trapped = StalePrimary(n), for every n: a primary that cannot reach a
\* majority eventually steps down (or regains its majority).
EventualStepDown == \A n \in Nodes : []<>~StalePrimary(n)

\* EXTENSION. Trapped = NoPartition /\ PrimaryInOffice /\ a \in DOMAIN queue,
\* for every actor a: once nothing is partitioned and a valid primary holds
\* the current term, a queued actor is eventually moved (leaves the queue;
\* RemoveActor also ends the obligation). Fairness: WF of MigrateActor(a, t).
NoPartition == partitioned = {}
EventualPlacement ==
    \A a \in Actors :
        []<>~(NoPartition /\ PrimaryInOffice /\ a \in DOMAIN queue)

\* State::looks_crashed: n is Active, silent (its heartbeat was not
\* received) and cut off from every other Active node, while the other
\* Active nodes are at least Majority (fixed: of the current members, n
\* included; reference modes: of all nodes), can all communicate with one
\* another, and no node is Joining or Leaving.
LooksCrashed(n) ==
    LET others == active \ {n}
    IN  /\ state[n] = "Active"
        /\ ~heartbeat_received[n]
        /\ Cardinality(others) >= Majority
        /\ \A m \in others : ~CanCommunicate(m, n)
        /\ \A a, b \in others : CanCommunicate(a, b)
        /\ \A m \in Nodes : state[m] \notin {"Joining", "Leaving"}

\* The failure detector's fairness, assumed by EventualFailureDeclaration
\* only (invariants/ Liveness::fairness): a detection of n that stays
\* possible is eventually recorded, and a declaration of n that has its
\* quorum is eventually proposed. It is not part of Fairness: with weak
\* fairness of MarkNodeFailed, a reference-mode behaviour that stays Stable
\* and unconverged would have to declare a node failed there (the weak
\* reference guard is enabled) and so would no longer count against
\* EventualMembershipConvergence.
FailureFairness(n) ==
    /\ \A d \in Nodes \ {n} : WF_vars(DetectFailure(d, n))
    /\ WF_vars(MarkNodeFailed(n))

\* Trapped = LooksCrashed(n), under FailureFairness(n): a node that looks
\* crashed to a connected majority is eventually declared Failed (or stops
\* looking crashed: it sends a heartbeat, a partition heals). CP: when no
\* majority is connected, nothing is promised. (In the fixed protocol
\* LooksCrashed(n) includes the registry's own evidence, ~heartbeat_received[n],
\* which alone enables MarkNodeFailed(n); the premise is kept as it was.)
EventualFailureDeclaration ==
    \A n \in Nodes : FailureFairness(n) => []<>~LooksCrashed(n)

\* State::is_leaderless: the cluster is stable, has a member, and no node
\* holds a valid primary claim.
Leaderless == Stable /\ active # {} /\ \A p \in Nodes : ~ValidPrimary(p)

\* The election's fairness, assumed by EventualElection only (as
\* FailureFairness is by EventualFailureDeclaration): an election that stays
\* possible is eventually proposed.
ElectionFairness == \A n \in Nodes : WF_vars(ElectPrimary(n))

\* Registry v2. Trapped = Leaderless, under ElectionFairness: once the
\* cluster is stable, a primary is eventually elected (or it stops being
\* stable). This is what quorums over the registry's slots break: three
\* slots, one member left, never a majority (violated in the reference
\* modes, and by the mutant quorum-over-slots).
EventualElection == ElectionFairness => []<>~Leaderless

(***************************************************************************)
(* Issue 20: a property for every progress promise the README makes. Each *)
(* has a planted bug in the Rust mutant catalogue that the default run of *)
(* the model checker catches with it (core/src/switches.rs).              *)
(***************************************************************************)

\* State::is_majority_leaderless: n is a member that reaches a majority of
\* the members, and no node holds a valid primary claim.
MajorityLeaderless(n) ==
    /\ state[n] = "Active"
    /\ HasMajority(n)
    /\ \A p \in Nodes : ~ValidPrimary(p)

\* Trapped = MajorityLeaderless(n), for every n, under ElectionFairness:
\* while n reaches a majority of the members, a primary is eventually in
\* office, whatever else changes meanwhile (members joining and leaving,
\* partitions elsewhere). EventualElection asks it only of a stable
\* cluster, where a guard that churn keeps disabling (an election only for
\* a member holding the newest configuration: mutant
\* elect-needs-newest-view) goes unseen.
EventualPrimary ==
    \A n \in Nodes : ElectionFairness => []<>~MajorityLeaderless(n)

\* State::is_rejoin_pending: n is Failed, Left or Joining (not a member and
\* not on its way out) and can communicate with every node.
RejoinPending(n) ==
    /\ state[n] \in {"Failed", "Left", "Joining"}
    /\ \A m \in Nodes : CanCommunicate(n, m)

\* The node's own wish to be a member, assumed by EventualRejoin(n) only:
\* the Agent proposes its node's NodeRecover, NodeJoin (while the
\* application wants it in) and NodeJoinComplete whenever each is enabled.
RejoinFairness(n) ==
    /\ WF_vars(NodeRecover(n))
    /\ WF_vars(NodeJoin(n))
    /\ WF_vars(NodeJoinComplete(n))

\* Trapped = RejoinPending(n), under RejoinFairness(n): a node whose
\* partitions healed and that wants to be a member is eventually Active
\* again. The recovery promised is this path: Failed, NodeRecover to Left,
\* NodeJoin, NodeJoinComplete; a Failed node never becomes Active directly
\* (mutant recover-needs-actors: no recovery once its actors moved away).
EventualRejoin ==
    \A n \in Nodes : RejoinFairness(n) => []<>~RejoinPending(n)

\* State::is_stranded: a is placed on a node that no longer serves it (Failed,
\* or recovered from Failed to Left).
Stranded(a) ==
    /\ a \in DOMAIN placements
    /\ state[placements[a].node] \in {"Failed", "Left"}

\* EXTENSION. Trapped = NoPartition /\ PrimaryInOffice /\ Stranded(a), for
\* every actor a, under Fairness: every declared node's actors are
\* eventually served by a member again (or removed). Mutant
\* fail-forgets-actors (a declaration that queues nothing) violates it, as
\* well as SingleActivation.
EventualFailover ==
    \A a \in Actors : []<>~(NoPartition /\ PrimaryInOffice /\ Stranded(a))

\* The steps that change the loads RebalanceActors balances: an actor placed
\* or removed, a change of the members.
LoadChange ==
    \/ \E a \in Actors : PlaceActor(a) \/ RemoveActor(a)
    \/ \E n \in Nodes :
          \/ NodeJoin(n) \/ NodeJoinComplete(n)
          \/ NodeLeave(n) \/ NodeLeaveComplete(n)
          \/ MarkNodeFailed(n) \/ NodeRecover(n)

\* EXTENSION. Once the cluster stays stable and the loads stop changing,
\* RebalanceActors eventually stops: no ping-pong of an actor between
\* equally loaded nodes (mutant rebalance-share-rounds-down: the share
\* rounded down). Not of the []<>~Trapped form: the Rust checker decides it
\* on the behaviours that stay Stable and take no LoadChange step
\* (Liveness::keeps), violated only by one that repeats RebalanceActors
\* (Liveness::violated_by_repeating).
BalanceSettles ==
    (<>[]Stable /\ <>[][~LoadChange]_vars)
        => <>[][\A t \in Terms : ~RebalanceActors(t)]_vars

=============================================================================
