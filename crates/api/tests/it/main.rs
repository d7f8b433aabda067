//! HTTP tests against small fakes: status codes, error mapping and forms,
//! where a real node is not the point (the node's own suite drives the
//! router over a real node).

mod errors;
mod fakes;
