// Package test holds hsmsim's suites that look at the whole project or run
// real processes: import rules (deps), end to end, chaos.
package test
