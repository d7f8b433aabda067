//! Replica group tests: openraft's storage suite against our log store and
//! state machine, and the deterministic simulation of a three-member group.

mod simulation;
mod storage;
