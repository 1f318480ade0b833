package audit_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hsmsim/hsmsim/node/audit"
)

// fakeClock returns a clock that starts at a fixed instant (not in UTC, to check the
// conversion) and advances by 1.5 ms per reading. Safe for concurrent use.
func fakeClock() func() time.Time {
	var mu sync.Mutex
	t := time.Date(2026, 3, 4, 5, 6, 7, 0, time.FixedZone("X", 3600))
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t = t.Add(1500 * time.Microsecond)
		return t
	}
}

func mustOpen(t *testing.T, path string, opts ...audit.Option) *audit.Log {
	t.Helper()
	l, err := audit.Open(path, fakeClock(), opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// event returns a valid event numbered i.
func event(i int) audit.Event {
	return audit.Event{
		Name:       audit.EventKeyCreate,
		Actor:      "alice",
		SessionHSM: "hsm-1",
		Outcome:    audit.OutcomeOK,
		Fields:     map[string]string{"handle": fmt.Sprint(i), "key_type": "aes", "label": "k"},
	}
}

// writeLog records n events in a new log and returns its path.
func writeLog(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.log")
	l := mustOpen(t, path, audit.WithSync(false))
	for i := range n {
		require.NoError(t, l.Record(event(i)))
	}
	require.NoError(t, l.Close())
	return path
}

// readLines returns the file's lines, each with its newline.
func readLines(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return bytes.SplitAfter(b, []byte("\n"))[:bytes.Count(b, []byte("\n"))]
}

// record is a decoded line, for assertions.
type record struct {
	Seq        uint64            `json:"seq"`
	Time       string            `json:"time"`
	Event      string            `json:"event"`
	Actor      string            `json:"actor"`
	SessionHSM string            `json:"session_hsm"`
	Outcome    string            `json:"outcome"`
	Fields     map[string]string `json:"fields"`
	Prev       string            `json:"prev"`
	Hash       string            `json:"hash"`
}

func decode(t *testing.T, raw []byte) record {
	t.Helper()
	var r record
	require.NoError(t, json.Unmarshal(raw, &r))
	return r
}

func verifyFile(t *testing.T, path string) (int, error) {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	return audit.Verify(f)
}

func TestRecordReopenContinue(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := audit.Open(path, fakeClock())
	require.NoError(t, err)
	for i := range 3 {
		require.NoError(t, l.Record(event(i)))
	}
	require.NoError(t, l.Close())
	require.NoError(t, l.Close(), "second Close")
	require.ErrorIs(t, l.Record(event(9)), audit.ErrClosed)

	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	l = mustOpen(t, path)
	require.NoError(t, l.Record(audit.Event{Name: audit.EventLogin, Actor: "bob", SessionHSM: "hsm-2", Outcome: audit.OutcomeDenied}))
	require.NoError(t, l.Record(audit.Event{Name: audit.EventClusterInit, SessionHSM: "hsm-2", Outcome: audit.OutcomeOK}))
	require.NoError(t, l.Close())

	n, err := verifyFile(t, path)
	require.NoError(t, err)
	require.Equal(t, 5, n)

	lines := readLines(t, path)
	require.Len(t, lines, 5)
	prev := strings.Repeat("0", 64)
	for i, raw := range lines {
		r := decode(t, raw)
		require.Equal(t, uint64(i+1), r.Seq)
		require.Equal(t, prev, r.Prev)
		sum := sha256.Sum256(bytes.TrimSuffix(raw, []byte("\n")))
		prev = hex.EncodeToString(sum[:])
	}
	first, fourth, fifth := decode(t, lines[0]), decode(t, lines[3]), decode(t, lines[4])
	require.Equal(t, "2026-03-04T04:06:07.001500000Z", first.Time, "UTC, nine fractional digits")
	require.Equal(t, map[string]string{"handle": "0", "key_type": "aes", "label": "k"}, first.Fields)
	require.Equal(t, record{
		Seq: 4, Time: "2026-03-04T04:06:07.001500000Z", Event: "login", Actor: "bob",
		SessionHSM: "hsm-2", Outcome: "denied", Fields: map[string]string{}, Prev: fourth.Prev, Hash: fourth.Hash,
	}, fourth, "the reopened log's clock restarts; seq continues")
	require.Equal(t, "cluster_init", fifth.Event)
	require.Equal(t, "", fifth.Actor)
	require.Contains(t, string(lines[4]), `"fields":{}`)
}

// TestHashDefinition recomputes each line's hash as doc.go defines it, independently of the
// package: SHA-256 of the line with the hash's hex digits removed.
func TestHashDefinition(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l := mustOpen(t, path)
	require.NoError(t, l.Record(audit.Event{
		Name: audit.EventUserCreate, Actor: "admin<&>", SessionHSM: "hsm-1", Outcome: audit.OutcomeOK,
		Fields: map[string]string{"z": "last", "a": "quote \" backslash \\ nl \n tab \t ls \u2028 é <b>", "role": "CU"},
	}))
	require.NoError(t, l.Close())

	lines := readLines(t, path)
	require.Len(t, lines, 1)
	raw := string(bytes.TrimSuffix(lines[0], []byte("\n")))
	require.True(t, strings.HasPrefix(raw, `{"seq":1,"time":"`), raw)
	require.Contains(t, raw, `"actor":"admin<&>"`, "no HTML escaping")
	require.Contains(t, raw, `"fields":{"a":"quote \" backslash \\ nl \n tab \t ls \u2028 é <b>","role":"CU","z":"last"}`)
	r := decode(t, lines[0])
	stripped := strings.Replace(raw, `"hash":"`+r.Hash+`"`, `"hash":""`, 1)
	require.True(t, strings.HasSuffix(stripped, `,"hash":""}`), stripped)
	sum := sha256.Sum256([]byte(stripped))
	require.Equal(t, hex.EncodeToString(sum[:]), r.Hash)

	n, err := verifyFile(t, path)
	require.NoError(t, err)
	require.Equal(t, 1, n)
}

func TestVerifyClean(t *testing.T) {
	tests := []struct {
		name  string
		lines int
	}{
		{"empty", 0},
		{"one line", 1},
		{"many lines", 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := verifyFile(t, writeLog(t, tt.lines))
			require.NoError(t, err)
			require.Equal(t, tt.lines, n)
		})
	}
}

// requireBrokenAt checks that Verify fails on data at line want, after want-1 good lines.
func requireBrokenAt(t *testing.T, data []byte, want int, msgAndArgs ...any) {
	t.Helper()
	n, err := audit.Verify(bytes.NewReader(data))
	require.ErrorIs(t, err, audit.ErrChainBroken, msgAndArgs...)
	var ce *audit.ChainError
	require.ErrorAs(t, err, &ce, msgAndArgs...)
	require.Equal(t, want, ce.Line, msgAndArgs...)
	require.Equal(t, want-1, n, msgAndArgs...)
	require.Contains(t, err.Error(), fmt.Sprintf("line %d", want), msgAndArgs...)
}

func TestVerifyDetectsTampering(t *testing.T) {
	const n = 5
	lines := readLines(t, writeLog(t, n))
	join := func(ls ...[]byte) []byte { return bytes.Join(ls, nil) }

	// Every single-byte change of every line fails at that line, whatever the new byte.
	t.Run("edit any byte", func(t *testing.T) {
		for k := range lines {
			for i := range lines[k] {
				for _, flip := range []byte{0x01, 0x20, 0x80} {
					edited := make([][]byte, n)
					copy(edited, lines)
					edited[k] = bytes.Clone(lines[k])
					edited[k][i] ^= flip
					requireBrokenAt(t, join(edited...), k+1, "line %d byte %d xor %#x", k+1, i, flip)
				}
			}
		}
	})

	tests := []struct {
		name string
		data []byte
		want int
	}{
		{"delete first line", join(lines[1:]...), 1},
		{"delete middle line", join(lines[0], lines[1], lines[3], lines[4]), 3},
		{"delete second to last line", join(lines[0], lines[1], lines[2], lines[4]), 4},
		{"swap adjacent lines", join(lines[0], lines[2], lines[1], lines[3], lines[4]), 2},
		{"swap distant lines", join(lines[0], lines[4], lines[2], lines[3], lines[1]), 2},
		{"swap first and last", join(lines[4], lines[1], lines[2], lines[3], lines[0]), 1},
		{"duplicate a line", join(lines[0], lines[1], lines[1], lines[2]), 3},
		{"truncate in the middle of a line", join(lines[0], lines[1], lines[2][:len(lines[2])/2]), 3},
		{"truncate before the last newline", join(lines[0], lines[1][:len(lines[1])-1]), 2},
		{"truncate the middle out of a line", join(lines[0], lines[1][:40], lines[1][120:], lines[2]), 2},
		{"blank line inserted", join(lines[0], []byte("\n"), lines[1]), 2},
		{"whitespace appended", join(lines[0], lines[1][:len(lines[1])-1], []byte(" \n")), 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			requireBrokenAt(t, tt.data, tt.want)
		})
	}
}

func TestConcurrentRecord(t *testing.T) {
	const goroutines, each = 8, 50
	path := filepath.Join(t.TempDir(), "audit.log")
	l := mustOpen(t, path, audit.WithSync(false))
	recordConcurrently(t, l, goroutines, each)
	require.NoError(t, l.Close())

	requireEachEventOnce(t, path, goroutines*each)
}

func TestRecordRefusesInvalidEvents(t *testing.T) {
	ok := event(1)
	with := func(f func(*audit.Event)) audit.Event {
		ev := ok
		ev.Fields = map[string]string{"handle": "1"}
		f(&ev)
		return ev
	}
	field := func(name string) audit.Event {
		return with(func(ev *audit.Event) { ev.Fields[name] = "s3cret" })
	}
	tests := []struct {
		name string
		ev   audit.Event
	}{
		{"password", field("password")},
		{"Password", field("Password")},
		{"new_password", field("new_password")},
		{"key_material", field("key_material")},
		{"KEY_MATERIAL", field("KEY_MATERIAL")},
		{"wrapped_key_material", field("wrapped_key_material")},
		{"plaintext", field("plaintext")},
		{"PlainText", field("PlainText")},
		{"empty name", with(func(ev *audit.Event) { ev.Name = "" })},
		{"camelCase name", with(func(ev *audit.Event) { ev.Name = "keyCreate" })},
		{"name with space", with(func(ev *audit.Event) { ev.Name = "key create" })},
		{"unknown outcome", with(func(ev *audit.Event) { ev.Outcome = "maybe" })},
		{"empty outcome", with(func(ev *audit.Event) { ev.Outcome = "" })},
		{"invalid UTF-8 actor", with(func(ev *audit.Event) { ev.Actor = "a\xff" })},
		{"invalid UTF-8 field value", with(func(ev *audit.Event) { ev.Fields["label"] = "\xc3" })},
	}
	path := filepath.Join(t.TempDir(), "audit.log")
	l := mustOpen(t, path)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := l.Record(tt.ev)
			require.ErrorIs(t, err, audit.ErrInvalidEvent)
			require.NotContains(t, err.Error(), "s3cret", "the error must not echo the value")
		})
	}
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Zero(t, fi.Size(), "nothing written")

	require.NoError(t, l.Record(ok), "the log still works")
	require.NoError(t, l.Record(with(func(ev *audit.Event) { ev.Fields = nil })), "nil fields")
}

func TestOpenCorruptTail(t *testing.T) {
	good := readLines(t, writeLog(t, 3))
	long := readLines(t, writeLog(t, 1))[0]
	// A last line longer than Open's read chunk.
	var big bytes.Buffer
	{
		path := filepath.Join(t.TempDir(), "audit.log")
		l := mustOpen(t, path, audit.WithSync(false))
		require.NoError(t, l.Record(event(0)))
		require.NoError(t, l.Record(audit.Event{Name: "big", Outcome: audit.OutcomeOK, Fields: map[string]string{"x": strings.Repeat("y", 10000)}}))
		require.NoError(t, l.Close())
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		big.Write(b)
	}
	edited := bytes.Clone(good[2])
	edited[10] ^= 1

	tests := []struct {
		name    string
		data    []byte
		wantErr bool
		wantSeq uint64 // seq of the next line when Open succeeds
	}{
		{"empty file", nil, false, 1},
		{"good", bytes.Join(good, nil), false, 4},
		{"long last line", big.Bytes(), false, 3},
		{"single line", long, false, 2},
		{"torn last line", bytes.Join([][]byte{good[0], good[1], good[2][:30]}, nil), true, 0},
		{"missing final newline", bytes.Join([][]byte{good[0], good[1], good[2][:len(good[2])-1]}, nil), true, 0},
		{"edited last line", bytes.Join([][]byte{good[0], good[1], edited}, nil), true, 0},
		{"garbage", []byte("not json\n"), true, 0},
		{"blank last line", bytes.Join([][]byte{good[0], []byte("\n")}, nil), true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			require.NoError(t, os.WriteFile(path, tt.data, 0o600))
			l, err := audit.Open(path, fakeClock(), audit.WithSync(false))
			if tt.wantErr {
				require.ErrorIs(t, err, audit.ErrCorruptTail)
				return
			}
			require.NoError(t, err)
			require.NoError(t, l.Record(event(7)))
			require.NoError(t, l.Close())
			lines := readLines(t, path)
			require.Equal(t, tt.wantSeq, decode(t, lines[len(lines)-1]).Seq)
			n, err := verifyFile(t, path)
			require.NoError(t, err)
			require.Equal(t, int(tt.wantSeq), n)
		})
	}
}

// recordConcurrently records goroutines*each distinct events, each writer
// its own share, and requires every Record to succeed.
func recordConcurrently(t *testing.T, l *audit.Log, goroutines, each int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*each)
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				errs <- l.Record(event(g*each + i))
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}

// requireEachEventOnce checks that the log at path verifies and holds n
// events, each (by its "handle" field) once.
func requireEachEventOnce(t *testing.T, path string, n int) {
	t.Helper()
	got, err := verifyFile(t, path)
	require.NoError(t, err)
	require.Equal(t, n, got)
	seen := map[string]bool{}
	for _, raw := range readLines(t, path) {
		seen[decode(t, raw).Fields["handle"]] = true
	}
	require.Len(t, seen, n, "every event written once")
}
