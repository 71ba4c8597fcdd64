// Package faults_test holds the control plane's fault and bad-input
// integration tests: everything runs over loopback, each test is bounded
// in time and asserts on outcomes (requests served, data kept, answers
// given), never on how fast something ran.
//
//   - TestBadInput: every state-changing endpoint refuses oversized,
//     malformed and wrong-typed bodies with a 4xx naming the reason, and
//     stores nothing.
//   - TestSlowBody: a slow body on ingest and on the JSON API is cut off
//     by the read timeout.
//   - TestHighCardinality: floods of distinct services, instances and
//     routes through the heartbeat endpoint are capped and counted.
//   - TestControlPlaneRestart: the control plane stops and comes back
//     under steady shop load; no request fails, agents resume.
//   - TestControlPlaneKilled: SIGKILL during ingest and policy writes
//     loses no acknowledged span, log or policy version.
//   - TestControlPlaneSlow: a control plane that answers after seconds
//     does not slow the shop.
//   - TestStoreWriteFailure: a failing store gives 503 + Retry-After, the
//     control plane stays up and the dashboard says why.
//   - TestSoak (PILOTHOUSE_SOAK=1 only): ten minutes of traffic and
//     ingest, memory sampled every 30 s.
package faults_test
