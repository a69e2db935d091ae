------------------------------ MODULE Membership ------------------------------
(***************************************************************************)
(* Cluster membership: node lifecycle, views, primary election with a      *)
(* fencing term, partitions.                                               *)
(*                                                                         *)
(* One module, three protocols, selected by the constant Mode:             *)
(*   "fixed"      the project's protocol (what production runs);           *)
(*   "reference"  the reference model of shared/PROTOCOL.md section 1;     *)
(*   "buggy"      the reference model with BUGGY = TRUE.                   *)
(*                                                                         *)
(* The Rust reducer core/src/step.rs mirrors this module action for        *)
(* action and guard for guard: every action below is the `Event` variant   *)
(* of the same name, reduced by the function of step.rs named in           *)
(* core/spec/README.md. Guards are written in the order step.rs checks     *)
(* them (the order decides only which refusal Rust reports, not whether    *)
(* the action is enabled).                                                 *)
(*                                                                         *)
(* Every place where the fixed protocol deviates from the reference model  *)
(* is marked with a comment starting "DEVIATION" and a short reason; the   *)
(* README lists them all. In the reference modes the registry counters     *)
(* term_counter and view_counter stay 0 (every assignment to them is under *)
(* Mode = "fixed"), so those modes have exactly the reference model's      *)
(* state space.                                                            *)
(*                                                                         *)
(* Mutants (core/src/config.rs `Mutant`: elect-without-majority,           *)
(* elect-without-term-increment, no-step-down, fail-without-detection,     *)
(* fail-keeps-views, no-sync-views) are a device of the Rust model checker *)
(* only: each removes one guard or effect of the fixed protocol to show    *)
(* that the checker's properties catch the mistake. They are deliberately  *)
(* NOT part of this specification.                                         *)
(*                                                                         *)
(* Node order: Nodes is assumed to be a finite set of naturals, and node   *)
(* order is `<` on them (Rust: NodeId n1 < n2 < ...; the TLC configs use   *)
(* Nodes = {1, 2, 3} for n1, n2, n3). The order is used by the reference   *)
(* HealPartition (lower id steps down), by the fixed HealPartition's tie   *)
(* break (which the fixed protocol never reaches), and to write the        *)
(* fairness over unordered pairs.                                          *)
(***************************************************************************)
EXTENDS Naturals, FiniteSets

CONSTANTS
    Nodes,    \* the node ids (n1 = 1, n2 = 2, ...)
    MaxView,  \* bound on view numbers and terms: a model-checking parameter only
    Mode      \* "fixed", "reference" or "buggy"

ASSUME Nodes \subseteq Nat /\ IsFiniteSet(Nodes) /\ Nodes # {}
\* Rust Config::new refuses max_view = 0: the bootstrap needs view number and term 1.
ASSUME MaxView \in Nat /\ MaxView >= 1
ASSUME Mode \in {"fixed", "reference", "buggy"}

(***************************************************************************)
(* DEVIATION (bound): in the reference model MaxView is part of the        *)
(* protocol. Here it is only a checking parameter: production runs the     *)
(* fixed protocol with no bound (u64 counters, Rust `max_view = None`,     *)
(* which corresponds to reading every `... <= MaxView` conjunct below as   *)
(* TRUE). Each such conjunct sits exactly where step.rs calls              *)
(* `within_bound` / `successor` on the new value: new value <= MaxView.    *)
(* (u64 overflow, refused by `checked_add` in Rust, is not modelled.)      *)
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
    view_counter

vars == <<state, view, view_number, believes_primary, term,
          heartbeat_received, partitioned, term_counter, view_counter>>

NodeStates == {"Left", "Joining", "Active", "Leaving", "Failed"}

-----------------------------------------------------------------------------
(***************************************************************************)
(* Derived notions (core/src/state.rs).                                    *)
(***************************************************************************)

\* The largest element of a finite set of naturals, 0 for the empty set
\* (Rust: `.max().unwrap_or(0)`).
MaxOf(S) == IF S = {} THEN 0 ELSE CHOOSE x \in S : \A y \in S : x >= y

\* State::active
active == {n \in Nodes : state[n] = "Active"}

\* State::believers
Believers == {n \in Nodes : believes_primary[n]}

\* State::can_communicate
CanCommunicate(a, b) == <<a, b>> \notin partitioned /\ <<b, a>> \notin partitioned

\* State::reachable_active
ReachableActive(n) == {m \in active : m = n \/ CanCommunicate(n, m)}

\* State::has_majority: a strict majority of ALL nodes, not of a view.
HasMajority(n) == 2 * Cardinality(ReachableActive(n)) > Cardinality(Nodes)

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
Converged == \A a, b \in active : view[a] = view[b]
StalePrimary(n) == believes_primary[n] /\ state[n] = "Active" /\ ~HasMajority(n)

(***************************************************************************)
(* step_down (step.rs) applied to the nodes of S: each stops believing it  *)
(* is primary. DEVIATION (terms cleared on step-down): the fixed protocol  *)
(* also clears the term of each node of S that believed it was primary (a *)
(* term is held only while primary, so no stale term lingers to be         *)
(* compared or reused); the reference modes keep it.                       *)
(***************************************************************************)
BeliefsAfterStepDown(S) ==
    [m \in Nodes |-> IF m \in S THEN FALSE ELSE believes_primary[m]]
TermsAfterStepDown(S) ==
    [m \in Nodes |-> IF Mode = "fixed" /\ m \in S /\ believes_primary[m]
                         THEN 0
                         ELSE term[m]]

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

-----------------------------------------------------------------------------
(***************************************************************************)
(* The fourteen actions. Every action is one serializable transaction      *)
(* against the shared registry (DESIGN.md): that is how the global guards  *)
(* and the simultaneous updates of several nodes' records below are        *)
(* realised in the real system.                                            *)
(***************************************************************************)

(***************************************************************************)
(* NodeJoin(n) -- step.rs node_join.                                       *)
(* n is Left. With no Active node, n bootstraps: Active, view {n},         *)
(* primary. Otherwise n becomes Joining.                                   *)
(* DEVIATION (bootstrap draws from the counters): in the fixed protocol    *)
(* the bootstrap's view number and term are the next values of the        *)
(* registry counters instead of the constant 1, so a re-bootstrapped       *)
(* cluster never reuses term 1 or view number 1.                           *)
(***************************************************************************)
NodeJoin(n) ==
    /\ state[n] = "Left"
    /\ IF active = {}
         THEN LET vn == IF Mode = "fixed" THEN view_counter + 1 ELSE 1
                  t  == IF Mode = "fixed" THEN term_counter + 1 ELSE 1
              IN  /\ vn <= MaxView
                  /\ t <= MaxView
                  /\ state' = [state EXCEPT ![n] = "Active"]
                  /\ believes_primary' = [believes_primary EXCEPT ![n] = TRUE]
                  /\ term' = [term EXCEPT ![n] = t]
                  /\ view' = [view EXCEPT ![n] = {n}]
                  /\ view_number' = [view_number EXCEPT ![n] = vn]
                  \* become_primary / record_view_number: the counters take
                  \* the issued values (fixed only).
                  /\ term_counter' = IF Mode = "fixed" THEN t ELSE term_counter
                  /\ view_counter' = IF Mode = "fixed" THEN vn ELSE view_counter
                  /\ UNCHANGED <<heartbeat_received, partitioned>>
         ELSE /\ state' = [state EXCEPT ![n] = "Joining"]
              /\ UNCHANGED <<view, view_number, believes_primary, term,
                             heartbeat_received, partitioned,
                             term_counter, view_counter>>

(***************************************************************************)
(* NodeJoinComplete(n) -- step.rs node_join_complete.                      *)
(* n is Joining and can communicate with at least one Active node. Let     *)
(* v = active \cup {n}. n becomes Active; n and every Active node that can *)
(* communicate with n adopt v with one new number; the others keep theirs. *)
(* Reference: number 1 + max view number over active.                      *)
(* DEVIATION (view counter): fixed takes the next registry view number.    *)
(***************************************************************************)
NodeJoinComplete(n) ==
    /\ state[n] = "Joining"
    /\ ReachableActive(n) # {}
    /\ LET vn == IF Mode = "fixed"
                   THEN view_counter + 1
                   ELSE MaxOf({view_number[m] : m \in active}) + 1
           v  == active \cup {n}
           adopters == {m \in v : m = n \/ CanCommunicate(n, m)}
       IN  /\ vn <= MaxView
           /\ state' = [state EXCEPT ![n] = "Active"]
           /\ view' = [m \in Nodes |-> IF m \in adopters THEN v ELSE view[m]]
           /\ view_number' = [m \in Nodes |-> IF m \in adopters THEN vn
                                                               ELSE view_number[m]]
           /\ view_counter' = IF Mode = "fixed" THEN vn ELSE view_counter
           /\ UNCHANGED <<believes_primary, term, heartbeat_received,
                          partitioned, term_counter>>

(***************************************************************************)
(* NodeLeave(n) -- step.rs node_leave.                                     *)
(* n is Active. It becomes Leaving and gives up any primary belief (fixed: *)
(* and the term it held, see TermsAfterStepDown).                          *)
(***************************************************************************)
NodeLeave(n) ==
    /\ state[n] = "Active"
    /\ state' = [state EXCEPT ![n] = "Leaving"]
    /\ believes_primary' = BeliefsAfterStepDown({n})
    /\ term' = TermsAfterStepDown({n})
    /\ UNCHANGED <<view, view_number, heartbeat_received, partitioned,
                   term_counter, view_counter>>

(***************************************************************************)
(* NodeLeaveComplete(n) -- step.rs node_leave_complete.                    *)
(* n is Leaving. n becomes Left with an empty view; every Active node      *)
(* (whether or not it can communicate with n) adopts `active`, which does  *)
(* not hold n.                                                             *)
(* Reference: each Active node increments its own number (all must stay   *)
(* <= MaxView); n keeps its view number and term.                          *)
(* DEVIATION (view counter): fixed gives all Active nodes one new number   *)
(* from the registry counter (none is issued when no node is Active), and  *)
(* resets n's number to 0 as for every node outside the cluster.           *)
(***************************************************************************)
NodeLeaveComplete(n) ==
    /\ state[n] = "Leaving"
    /\ IF Mode = "fixed"
         THEN LET vn == view_counter + 1
              IN  /\ active = {} \/ vn <= MaxView
                  /\ state' = [state EXCEPT ![n] = "Left"]
                  /\ view' = [m \in Nodes |->
                                 IF m = n THEN {}
                                 ELSE IF m \in active THEN active
                                 ELSE view[m]]
                  /\ view_number' = [m \in Nodes |->
                                 IF m = n THEN 0
                                 ELSE IF m \in active THEN vn
                                 ELSE view_number[m]]
                  /\ view_counter' = IF active = {} THEN view_counter ELSE vn
                  /\ UNCHANGED <<believes_primary, term, heartbeat_received,
                                 partitioned, term_counter>>
         ELSE /\ \A m \in active : view_number[m] + 1 <= MaxView
              /\ state' = [state EXCEPT ![n] = "Left"]
              /\ view' = [m \in Nodes |->
                             IF m = n THEN {}
                             ELSE IF m \in active THEN active
                             ELSE view[m]]
              /\ view_number' = [m \in Nodes |->
                             IF m \in active THEN view_number[m] + 1
                             ELSE view_number[m]]
              /\ UNCHANGED <<believes_primary, term, heartbeat_received,
                             partitioned, term_counter, view_counter>>

(***************************************************************************)
(* SendHeartbeat(n) -- step.rs send_heartbeat. Identical in all modes.     *)
(* n is Active. n and every Active or Leaving node that can communicate    *)
(* with n get heartbeat_received = TRUE.                                   *)
(***************************************************************************)
SendHeartbeat(n) ==
    /\ state[n] = "Active"
    /\ heartbeat_received' =
           [m \in Nodes |->
               IF \/ m = n
                  \/ CanCommunicate(n, m) /\ state[m] \in {"Active", "Leaving"}
                 THEN TRUE
                 ELSE heartbeat_received[m]]
    /\ UNCHANGED <<state, view, view_number, believes_primary, term,
                   partitioned, term_counter, view_counter>>

(***************************************************************************)
(* DetectFailure(d, t) -- step.rs detect_failure.                          *)
(* d # t, both Active, t in d's view, d cannot communicate with t, t's     *)
(* heartbeat was not received. d drops t from its view (keeping itself in  *)
(* it) with a new number: reference view_number[d] + 1.                    *)
(* DEVIATION (view counter): fixed takes the next registry view number.    *)
(***************************************************************************)
DetectFailure(d, t) ==
    /\ d # t
    /\ state[d] = "Active"
    /\ state[t] = "Active"
    /\ t \in view[d]
    /\ ~CanCommunicate(d, t)
    /\ ~heartbeat_received[t]
    /\ LET vn == IF Mode = "fixed" THEN view_counter + 1 ELSE view_number[d] + 1
       IN  /\ vn <= MaxView
           /\ view' = [view EXCEPT ![d] = (view[d] \ {t}) \cup {d}]
           /\ view_number' = [view_number EXCEPT ![d] = vn]
           /\ view_counter' = IF Mode = "fixed" THEN vn ELSE view_counter
           /\ UNCHANGED <<state, believes_primary, term, heartbeat_received,
                          partitioned, term_counter>>

(***************************************************************************)
(* MarkNodeFailed(n) -- step.rs mark_node_failed (guard: detected_by).     *)
(* n is Active and detected; it becomes Failed: empty view, view number 0, *)
(* no primary belief, term 0.                                              *)
(* Reference: "detected" is merely "some Active d # n lacks n in its view" *)
(* (also true when d never heard of n: the LeaveDetectionWeak defect).     *)
(* DEVIATION (detection guard): fixed requires that n's heartbeat was not  *)
(* received and some Active d # n lacks n in its view AND cannot           *)
(* communicate with n, the same evidence DetectFailure requires.           *)
(* DEVIATION (atomic failure handling): fixed removes n, in the same       *)
(* transition, from every Active view that still lists it: those nodes     *)
(* (the "listers") adopt `active \ {n}` with one new registry number (the  *)
(* only bound check, and only when there is a lister); n is fenced (the    *)
(* Rust effect Fenced: it stops serving; in the state, its primary belief  *)
(* and term are dropped). So a Failed, later Left, node is in no Active    *)
(* view (LeaveDetectionWeak).                                              *)
(***************************************************************************)
MarkNodeFailed(n) ==
    /\ state[n] = "Active"
    /\ IF Mode = "fixed"
         THEN \* detected_by(n)
              /\ ~heartbeat_received[n]
              /\ \E d \in active \ {n} : n \notin view[d] /\ ~CanCommunicate(d, n)
         ELSE \E d \in active \ {n} : n \notin view[d]
    /\ LET remaining == active \ {n}
           listers   == {m \in remaining : n \in view[m]}
           cleanup   == Mode = "fixed" /\ listers # {}
           vn        == view_counter + 1
       IN  /\ cleanup => vn <= MaxView
           /\ state' = [state EXCEPT ![n] = "Failed"]
           \* step_down(n) then term := 0 in every mode, so term'[n] = 0.
           /\ believes_primary' = [believes_primary EXCEPT ![n] = FALSE]
           /\ term' = [term EXCEPT ![n] = 0]
           /\ view' = [m \in Nodes |->
                          IF m = n THEN {}
                          ELSE IF cleanup /\ m \in listers THEN remaining
                          ELSE view[m]]
           /\ view_number' = [m \in Nodes |->
                          IF m = n THEN 0
                          ELSE IF cleanup /\ m \in listers THEN vn
                          ELSE view_number[m]]
           /\ view_counter' = IF cleanup THEN vn ELSE view_counter
           /\ UNCHANGED <<heartbeat_received, partitioned, term_counter>>

(***************************************************************************)
(* NodeRecover(n) -- step.rs node_recover.                                 *)
(* n is Failed. It becomes Left: empty view, view number 0, term 0.        *)
(* DEVIATION (recover guard): fixed also requires that no Active view      *)
(* lists n (always true after a fixed MarkNodeFailed; checked anyway), so  *)
(* a node is never Left while an Active node still counts it as a member.  *)
(***************************************************************************)
NodeRecover(n) ==
    /\ state[n] = "Failed"
    /\ IF Mode = "fixed"
         THEN \A m \in active : n \notin view[m]
         ELSE TRUE
    /\ state' = [state EXCEPT ![n] = "Left"]
    /\ view' = [view EXCEPT ![n] = {}]
    /\ view_number' = [view_number EXCEPT ![n] = 0]
    /\ term' = [term EXCEPT ![n] = 0]
    /\ UNCHANGED <<believes_primary, heartbeat_received, partitioned,
                   term_counter, view_counter>>

(***************************************************************************)
(* ElectPrimary(n) -- step.rs elect_primary.                               *)
(* n does not believe it is primary, is Active, has a majority, and no     *)
(* node anywhere has a valid primary claim; n becomes primary.             *)
(* Reference: term 1 + max term over all nodes.                            *)
(* Buggy: the majority and no-valid-primary guards are dropped, and the    *)
(* term is max term over all nodes, NOT incremented (still checked         *)
(* against MaxView, as step.rs does; vacuous in TypeOK states).            *)
(* DEVIATION (registry term counter): fixed takes the next registry term,  *)
(* never reused even after resets of node terms.                           *)
(* DEVIATION (election demotes superseded primaries): fixed demotes, in    *)
(* the same transition, every other node that still believes it is        *)
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
                  [] Mode = "buggy"     -> MaxTerm
       IN  /\ t <= MaxView
           /\ IF Mode = "fixed"
                THEN /\ believes_primary' =
                            [BeliefsAfterStepDown(Believers) EXCEPT ![n] = TRUE]
                     /\ term' = [TermsAfterStepDown(Believers) EXCEPT ![n] = t]
                     /\ term_counter' = t   \* max(term_counter, t) = t
                ELSE /\ believes_primary' = [believes_primary EXCEPT ![n] = TRUE]
                     /\ term' = [term EXCEPT ![n] = t]
                     /\ UNCHANGED term_counter
           /\ UNCHANGED <<state, view, view_number, heartbeat_received,
                          partitioned, view_counter>>

(***************************************************************************)
(* PrimaryStepDown(n) -- step.rs primary_step_down.                        *)
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
                   term_counter, view_counter>>

(***************************************************************************)
(* CreatePartition(a, b) -- step.rs create_partition. Identical in all     *)
(* modes. a # b, not yet partitioned: both orderings are added.            *)
(***************************************************************************)
CreatePartition(a, b) ==
    /\ a # b
    /\ CanCommunicate(a, b)
    /\ partitioned' = partitioned \cup {<<a, b>>, <<b, a>>}
    /\ UNCHANGED <<state, view, view_number, believes_primary, term,
                   heartbeat_received, term_counter, view_counter>>

(***************************************************************************)
(* HealPartition(a, b) -- step.rs heal_partition.                          *)
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
                   term_counter, view_counter>>

(***************************************************************************)
(* ResetHeartbeats -- step.rs reset_heartbeats. Identical in all modes and *)
(* always enabled (a stuttering step when every flag is already FALSE):    *)
(* a heartbeat interval passes.                                            *)
(***************************************************************************)
ResetHeartbeats ==
    /\ heartbeat_received' = [n \in Nodes |-> FALSE]
    /\ UNCHANGED <<state, view, view_number, believes_primary, term,
                   partitioned, term_counter, view_counter>>

(***************************************************************************)
(* SyncViews(a, b) -- step.rs sync_views.                                  *)
(* a # b, both Active, can communicate, view numbers differ. Both adopt    *)
(* the view of the node with the larger number, united with {a, b}, with   *)
(* a new number: reference h + 1 where h is the larger number.             *)
(* DEVIATION (view counter): fixed takes the next registry view number.    *)
(* SyncViews(a, b) and SyncViews(b, a) are the same transition.            *)
(***************************************************************************)
SyncViews(a, b) ==
    /\ a # b
    /\ state[a] = "Active"
    /\ state[b] = "Active"
    /\ CanCommunicate(a, b)
    /\ view_number[a] # view_number[b]
    /\ LET newer == IF view_number[a] > view_number[b] THEN a ELSE b
           vn    == IF Mode = "fixed" THEN view_counter + 1
                                      ELSE view_number[newer] + 1
           v     == view[newer] \cup {a, b}
       IN  /\ vn <= MaxView
           /\ view' = [view EXCEPT ![a] = v, ![b] = v]
           /\ view_number' = [view_number EXCEPT ![a] = vn, ![b] = vn]
           /\ view_counter' = IF Mode = "fixed" THEN vn ELSE view_counter
           /\ UNCHANGED <<state, believes_primary, term, heartbeat_received,
                          partitioned, term_counter>>

-----------------------------------------------------------------------------
\* Event::all lists the same instances (symmetric pairs once, a < b).
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

\* invariants.rs fair_events: weak fairness of SyncViews(a, b) for every pair
\* (a < b suffices: the two orderings are the same action) and of
\* PrimaryStepDown(n) for every n.
Fairness ==
    /\ \A a \in Nodes : \A b \in {m \in Nodes : a < m} : WF_vars(SyncViews(a, b))
    /\ \A n \in Nodes : WF_vars(PrimaryStepDown(n))

Spec == Init /\ [][Next]_vars /\ Fairness

-----------------------------------------------------------------------------
(***************************************************************************)
(* State invariants (core/src/invariants.rs).                              *)
(***************************************************************************)

\* type_ok. The counter conjuncts are implied in Rust (u64, only ever set to
\* an issued value, which passed the bound check).
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
    \* Fixed: every node's term and view number was issued by the registry.
    /\ Mode = "fixed" =>
           \A n \in Nodes : term[n] <= term_counter /\ view_number[n] <= view_counter

\* membership_consistency
MembershipConsistency ==
    \A a, b \in active :
        (b \in view[a] /\ a \in view[b] /\ view_number[a] = view_number[b])
            => view[a] = view[b]

\* join_atomicity
JoinAtomicity ==
    \A n \in Nodes :
        /\ state[n] = "Active" => view[n] # {}
        /\ state[n] \in {"Joining", "Left", "Failed"} => view[n] = {}
        \* a Leaving node may have any view

\* leave_detection_weak
LeaveDetectionWeak ==
    \A n \in Nodes : state[n] = "Left" => \A m \in active : n \notin view[m]

\* no_split_brain
NoSplitBrain ==
    \A p, q \in Nodes : ValidPrimary(p) /\ ValidPrimary(q) => p = q

\* at_most_one_primary (project invariant; holds in the fixed protocol only)
AtMostOnePrimary ==
    \A p, q \in Nodes : believes_primary[p] /\ believes_primary[q] => p = q

(***************************************************************************)
(* Transition properties (invariants.rs, checked on every step): the       *)
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
\* the step, an unreceived heartbeat and an Active detector d # n that lacked
\* it in its view and could not communicate with it.
FailureRequiresDetectionStep ==
    \A n \in Nodes :
        (state[n] = "Active" /\ state'[n] = "Failed")
            => /\ ~heartbeat_received[n]
               /\ \E d \in active \ {n} : n \notin view[d] /\ ~CanCommunicate(d, n)

FencingTermMonotonic     == [][FencingTermMonotonicStep]_vars
MinorityCannotElect      == [][MinorityCannotElectStep]_vars
FailureRequiresDetection == [][FailureRequiresDetectionStep]_vars

(***************************************************************************)
(* Liveness (invariants.rs `Liveness`): no fair behaviour stays forever in *)
(* the set Trapped, i.e. []<>~Trapped, under Fairness.                     *)
(* NB: under a finite MaxView, a violation can be an artefact of the bound *)
(* (SyncViews disabled because the next number would exceed MaxView).      *)
(***************************************************************************)

\* Trapped = Stable /\ ~Converged: once the cluster is stable (every node
\* Active or Left, nothing partitioned), all Active nodes eventually share
\* one view.
EventualMembershipConvergence == []<>~(Stable /\ ~Converged)

\* Trapped = StalePrimary(n), for every n: a primary that cannot reach a
\* majority eventually steps down (or regains its majority).
EventualStepDown == \A n \in Nodes : []<>~StalePrimary(n)

=============================================================================
