package audit

import (
	"errors"
	"fmt"
)

// The errors audit returns, wrapped with %w and context; test for them with errors.Is.
var (
	// ErrChainBroken is returned by Verify for the first line that is not a valid link of the
	// chain: not canonical JSON, a wrong seq, prev or hash. It is wrapped in a *ChainError
	// that names the line.
	ErrChainBroken = errors.New("audit: hash chain broken")

	// ErrCorruptTail is returned by Open when an existing file does not end with a complete,
	// self-consistent line (a torn write, a truncated or edited file). The log cannot be
	// continued; an operator must inspect it with Verify and move it aside.
	ErrCorruptTail = errors.New("audit: corrupt log tail")

	// ErrInvalidEvent is returned by Record for an event it refuses to write: a name that is
	// not snake_case, an unknown outcome, a string that is not valid UTF-8, or a field name
	// that suggests a secret (see the package comment, "Secrets").
	ErrInvalidEvent = errors.New("audit: invalid event")

	// ErrClosed is returned by Record after Close.
	ErrClosed = errors.New("audit: log closed")

	// ErrBroken is returned by Record after an earlier write or fsync failed; the file's
	// state is unknown and the Log writes nothing more.
	ErrBroken = errors.New("audit: log broken by an earlier write failure")
)

// ChainError reports the first line Verify found broken. It unwraps to ErrChainBroken.
type ChainError struct {
	// Line is the 1-based number of the broken line in the input.
	Line int
	// Reason says what is wrong with it, without quoting its content.
	Reason string
}

// Error implements error.
func (e *ChainError) Error() string {
	return fmt.Sprintf("%v at line %d: %s", ErrChainBroken, e.Line, e.Reason)
}

// Unwrap returns ErrChainBroken.
func (e *ChainError) Unwrap() error { return ErrChainBroken }
