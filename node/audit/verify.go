package audit

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// Verify reads a whole audit log from r and checks its chain: every line complete (ending in
// "\n") and self-consistent (see parseLine: canonical JSON carrying its own hash), seq
// contiguous from 1, and each prev the hash of the previous line's bytes (64 zeros on the
// first). It returns the number of lines that passed. At the first broken line it stops and
// returns a *ChainError naming it, which wraps ErrChainBroken; a read error is returned as is.
// An empty input is a valid, empty log.
func Verify(r io.Reader) (lines int, err error) {
	br := bufio.NewReader(r)
	prev := zeroHash
	for {
		raw, rerr := br.ReadBytes('\n')
		if rerr != nil && !errors.Is(rerr, io.EOF) {
			return lines, fmt.Errorf("audit: verify: read line %d: %w", lines+1, rerr)
		}
		if len(raw) == 0 && rerr != nil {
			return lines, nil // clean end of input
		}
		n := lines + 1
		if raw[len(raw)-1] != '\n' {
			return lines, &ChainError{Line: n, Reason: "incomplete line (no newline)"}
		}
		raw = raw[:len(raw)-1]
		rec, perr := parseLine(raw)
		if perr != nil {
			return lines, &ChainError{Line: n, Reason: perr.Error()}
		}
		if rec.Seq != uint64(n) {
			return lines, &ChainError{Line: n, Reason: fmt.Sprintf("seq %d, want %d", rec.Seq, n)}
		}
		if rec.Prev != prev {
			return lines, &ChainError{Line: n, Reason: "prev is not the hash of the previous line"}
		}
		prev = hashOf(raw)
		lines = n
	}
}
