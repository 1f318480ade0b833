package chaos

import (
	"cmp"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// opKind is an operation of the key database workload.
type opKind string

const (
	// opCreate is GenerateSymmetricKey with a label no other create uses.
	opCreate opKind = "create"
	// opGet is FindKeys by label.
	opGet opKind = "get"
	// opDelete is DeleteKey of a handle known for the label.
	opDelete opKind = "delete"
)

// kdbInput is an operation's input: the label it concerns and, for a
// delete, the handle it deletes.
type kdbInput struct {
	Op     opKind
	Label  string
	Handle uint64
}

// kdbOutput is an operation's outcome.
type kdbOutput struct {
	// Unknown says the outcome is not known: the operation may or may not
	// have taken effect (its history entry returns at infinity).
	Unknown bool
	// Handle is a create's new key.
	Handle uint64
	// Handles are a get's keys with the label, sorted.
	Handles []uint64
	// NotFound is a delete's "no such key".
	NotFound bool
}

// kdbState is the sequential model's state for one label: labels are
// unique, so a label has at most one key, created at most once.
type kdbState struct {
	// Created says a create of the label has taken effect.
	Created bool
	// Exists says the label's key exists (created, not deleted).
	Exists bool
	// Handle is the key's handle; 0 while no completed operation has told
	// it (the create's outcome is unknown and no read has seen it).
	Handle uint64
}

// kdbStep is the sequential specification. An operation with an unknown
// outcome is applied as if it took effect: porcupine may linearize it
// anywhere after its invocation, and linearizing it last (after every other
// operation, which its infinite return time allows) stands for "it never
// took effect".
func kdbStep(state, input, output any) (bool, any) {
	s, in, out := state.(kdbState), input.(kdbInput), output.(kdbOutput)
	switch in.Op {
	case opCreate:
		if s.Created {
			return false, s // a label is created once; a second create would be a duplicate
		}
		h := out.Handle
		if out.Unknown {
			h = 0
		}
		return true, kdbState{Created: true, Exists: true, Handle: h}
	case opGet:
		switch {
		case out.Unknown:
			return true, s
		case !s.Exists:
			return len(out.Handles) == 0, s
		case len(out.Handles) != 1:
			return false, s
		case s.Handle != 0 && s.Handle != out.Handles[0]:
			return false, s
		}
		s.Handle = out.Handles[0]
		return true, s
	case opDelete:
		matches := s.Exists && (s.Handle == 0 || s.Handle == in.Handle)
		switch {
		case out.Unknown:
			if matches {
				return true, kdbState{Created: true, Handle: in.Handle}
			}
			return true, s
		case out.NotFound:
			return !matches, s
		case !matches:
			return false, s
		}
		return true, kdbState{Created: true, Handle: in.Handle}
	}
	return false, s
}

// partitionBy returns a partition function that splits a history into one
// history per key(input), in order of first appearance: operations on
// different keys (labels, descriptions, aliases) do not interact, and
// linearizability is compositional (Herlihy and Wing), so the history is
// linearizable when each key's is.
func partitionBy(key func(input any) string) func([]porcupine.Operation) [][]porcupine.Operation {
	return func(history []porcupine.Operation) [][]porcupine.Operation {
		index := map[string]int{}
		var out [][]porcupine.Operation
		for _, op := range history {
			k := key(op.Input)
			i, ok := index[k]
			if !ok {
				i = len(out)
				index[k] = i
				out = append(out, nil)
			}
			out[i] = append(out[i], op)
		}
		return out
	}
}

// kdbLabel is the key database model's partition: the label.
func kdbLabel(input any) string { return input.(kdbInput).Label }

// kdbModel is the porcupine model of the key database, per label.
var kdbModel = porcupine.Model{
	Partition: partitionBy(kdbLabel),
	Init:      func() any { return kdbState{} },
	Step:      kdbStep,
	Equal:     func(a, b any) bool { return a.(kdbState) == b.(kdbState) },
	DescribeOperation: func(input, output any) string {
		return describeOp(input.(kdbInput), output.(kdbOutput))
	},
	DescribeState: func(state any) string {
		s := state.(kdbState)
		switch {
		case !s.Exists && s.Created:
			return "deleted"
		case !s.Exists:
			return "absent"
		case s.Handle == 0:
			return "exists (handle unknown)"
		}
		return fmt.Sprintf("exists, handle %d", s.Handle)
	},
}

// describeOp renders an operation for people: the history file and the
// visualisation.
func describeOp(in kdbInput, out kdbOutput) string {
	var call string
	switch in.Op {
	case opDelete:
		call = fmt.Sprintf("delete(%q, %d)", in.Label, in.Handle)
	default:
		call = fmt.Sprintf("%s(%q)", in.Op, in.Label)
	}
	switch {
	case out.Unknown:
		return call + " -> ? (unknown)"
	case in.Op == opCreate:
		return fmt.Sprintf("%s -> handle %d", call, out.Handle)
	case in.Op == opGet:
		return fmt.Sprintf("%s -> %v", call, out.Handles)
	case out.NotFound:
		return call + " -> not found"
	}
	return call + " -> ok"
}

// linearizabilityTimeout bounds porcupine's search. Partitioned by label
// (or description, or alias), each partition holds a handful to a few
// hundred operations and checks in milliseconds; an Unknown result (the
// search timed out) fails the run all the same.
const linearizabilityTimeout = 2 * time.Minute

// linModel is one history's model, with what the suite needs to report on
// it: the key database's, and the KMS endpoint's keys and aliases.
type linModel struct {
	// name prefixes the files written for the history
	// (<name>-history.txt, <name>-linearizability.html).
	name  string
	model porcupine.Model
	// key returns an operation's partition (label, description, alias).
	key func(input any) string
}

// kdbLin is the key database's history.
var kdbLin = linModel{name: "keydb", model: kdbModel, key: kdbLabel}

// historyFile is where writeHistory puts m's history in dir.
func (m linModel) historyFile(dir string) string { return filepath.Join(dir, m.name+"-history.txt") }

// linResult is the outcome of a linearizability check.
type linResult struct {
	Result porcupine.CheckResult
	// Anomalies is the number of partitions (labels, descriptions,
	// aliases) whose history is not linearizable.
	Anomalies int
	// Labels name those partitions (up to 20).
	Labels []string
	// Visualization is the HTML file written on failure, "" otherwise.
	Visualization string
}

// checkLinearizable checks history against m with porcupine. When it is
// not linearizable (or the check timed out), it counts the partitions at
// fault and writes porcupine's visualisation, annotated with the nemesis's
// faults, to dir/<name>-linearizability.html.
func checkLinearizable(m linModel, history []porcupine.Operation, faults []annotation, dir string) (linResult, error) {
	res := linResult{Result: porcupine.CheckOperationsTimeout(m.model, history, linearizabilityTimeout)}
	if res.Result == porcupine.Ok {
		return res, nil
	}
	for _, part := range partitionBy(m.key)(history) {
		if porcupine.CheckOperationsTimeout(m.model, part, linearizabilityTimeout) != porcupine.Ok {
			res.Anomalies++
			if len(res.Labels) < 20 {
				res.Labels = append(res.Labels, m.key(part[0].Input))
			}
		}
	}
	_, info := porcupine.CheckOperationsVerbose(m.model, history, linearizabilityTimeout)
	var notes []porcupine.Annotation
	for _, f := range faults {
		notes = append(notes, porcupine.Annotation{Tag: "nemesis", Start: f.start, End: f.end,
			Description: f.text, BackgroundColor: "#f6d5d5"})
	}
	info.AddAnnotations(notes)
	res.Visualization = filepath.Join(dir, m.name+"-linearizability.html")
	if err := porcupine.VisualizePath(m.model, info, res.Visualization); err != nil {
		return res, fmt.Errorf("write the visualisation: %w", err)
	}
	return res, nil
}

// annotation is a nemesis event for the visualisation and the history
// file: a span of the run's time, in nanoseconds.
type annotation struct {
	start, end int64
	text       string
}

// writeHistory writes m's history and the nemesis's faults to path, one
// line each, in order of time, for a person to read.
func writeHistory(m linModel, path string, header []string, history []porcupine.Operation, faults []annotation) error {
	type line struct {
		at   int64
		text string
	}
	var lines []line
	for _, op := range history {
		ret := "       ?"
		if op.Return != math.MaxInt64 {
			ret = fmt.Sprintf("%8.3f", seconds(op.Return))
		}
		lines = append(lines, line{op.Call, fmt.Sprintf("%8.3f %s  p%-3d %s",
			seconds(op.Call), ret, op.ClientId, m.model.DescribeOperation(op.Input, op.Output))})
	}
	for _, f := range faults {
		lines = append(lines, line{f.start, fmt.Sprintf("%8.3f %8.3f  nemesis %s", seconds(f.start), seconds(f.end), f.text)})
	}
	slices.SortStableFunc(lines, func(a, b line) int { return cmp.Compare(a.at, b.at) })
	var b strings.Builder
	for _, h := range header {
		b.WriteString("# " + h + "\n")
	}
	b.WriteString("# columns: invoked (s since start), returned (? = unknown outcome), process, operation -> result\n")
	for _, l := range lines {
		b.WriteString(l.text + "\n")
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}

func seconds(ns int64) float64 { return float64(ns) / 1e9 }
