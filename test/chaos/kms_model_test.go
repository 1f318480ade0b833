package chaos

import (
	"fmt"
	"slices"
	"strings"

	"github.com/anishathalye/porcupine"
)

// The KMS endpoint's histories have two sequential models of their own,
// each partitioned like the key database's (see the package documentation,
// "The KMS endpoint"):
//
//   - KMS keys, per Description. A key's id is chosen by the endpoint, so
//     the workload gives each CreateKey a Description no other CreateKey
//     uses, and the model follows "the key created with this
//     Description". CreateKey is not idempotent and the SDK retries it: an
//     attempt whose answer was lost may have created a key nobody learns
//     the id of. Those keys are counted, not named: a scan at the end may
//     find at most that many keys beside the acknowledged one, all
//     Enabled (no one can act on a key whose id they never learnt).
//   - Aliases, per alias name: a register holding the target key id, or
//     nothing. Alias names are the client's, so the model is exact.
//
// In both, as in the key database's model, an operation whose outcome is
// unknown is applied as if it took effect, and porcupine may linearize it
// at any point after its invocation, including after every other
// operation, which stands for "it never took effect".

// kmsKeyOp is an operation of the KMS key workload.
type kmsKeyOp string

const (
	// kopCreate is CreateKey in the custom key store, with a Description
	// no other CreateKey uses.
	kopCreate kmsKeyOp = "create-key"
	// kopDescribe is DescribeKey by key id.
	kopDescribe kmsKeyOp = "describe-key"
	// kopSchedule is ScheduleKeyDeletion by key id.
	kopSchedule kmsKeyOp = "schedule-deletion"
	// kopScan is the final scan: ListKeys, then DescribeKey of every key,
	// split into one read per Description.
	kopScan kmsKeyOp = "scan"
)

// KMS key states the model knows (botocore KeyState).
const (
	keyEnabled         = "Enabled"
	keyPendingDeletion = "PendingDeletion"
)

// kmsKeyInput is a KMS key operation's input.
type kmsKeyInput struct {
	Op kmsKeyOp
	// Desc is the key's Description: the partition.
	Desc string
	// KeyID is the key a describe or a schedule names.
	KeyID string
}

// kmsKeyOutput is a KMS key operation's outcome.
type kmsKeyOutput struct {
	// Unknown says the outcome is not known (return at infinity).
	Unknown bool
	// KeyID is a create's new key.
	KeyID string
	// Refused is a create's definite refusal (a 4xx answer): no key.
	Refused bool
	// State is a describe's KeyState.
	State string
	// InvalidState is a schedule's KMSInvalidStateException: the key is
	// already pending deletion.
	InvalidState bool
	// NotFound is a describe's or a schedule's NotFoundException.
	NotFound bool
	// Found is a scan's keys with the Description: "id=State" each,
	// sorted, comma-separated.
	Found string
}

// kmsKeyState is the model's state for one Description.
type kmsKeyState struct {
	// Known is the key an acknowledged create returned, "" before.
	Known string
	// Pending says Known is pending deletion.
	Pending bool
	// Extra is how many keys with the Description but an id nobody
	// learnt may exist: one per create attempt with an unknown outcome.
	Extra int
}

// stateName is the KeyState of the known key.
func (s kmsKeyState) stateName() string {
	if s.Pending {
		return keyPendingDeletion
	}
	return keyEnabled
}

// kmsKeyStep is the sequential specification of KMS keys, per Description.
// Keys are never deleted during a run (ScheduleKeyDeletion waits 7 to 30
// days on the endpoint's clock, which the suite does not advance), so a
// key that was created is found until the end.
func kmsKeyStep(state, input, output any) (bool, any) {
	s, in, out := state.(kmsKeyState), input.(kmsKeyInput), output.(kmsKeyOutput)
	switch in.Op {
	case kopCreate:
		switch {
		case out.Unknown:
			s.Extra++
			return true, s
		case out.Refused:
			return true, s
		case s.Known != "":
			return false, s // one create per Description is acknowledged
		}
		s.Known = out.KeyID
		return true, s
	case kopDescribe:
		switch {
		case out.Unknown:
			return true, s
		case s.Known != in.KeyID || out.NotFound:
			return false, s
		}
		return out.State == s.stateName(), s
	case kopSchedule:
		switch {
		case out.Unknown:
			if s.Known == in.KeyID {
				s.Pending = true
			}
			return true, s
		case s.Known != in.KeyID || out.NotFound:
			return false, s
		case out.InvalidState:
			return s.Pending, s
		case s.Pending:
			return false, s
		}
		s.Pending = true
		return true, s
	case kopScan:
		if out.Unknown {
			return true, s
		}
		extra, sawKnown := 0, false
		for _, e := range splitFound(out.Found) {
			id, st, _ := strings.Cut(e, "=")
			switch {
			case id == s.Known:
				if st != s.stateName() {
					return false, s
				}
				sawKnown = true
			case st != keyEnabled:
				return false, s
			default:
				extra++
			}
		}
		return (s.Known == "" || sawKnown) && extra <= s.Extra, s
	}
	return false, s
}

// splitFound splits a scan's Found.
func splitFound(found string) []string {
	if found == "" {
		return nil
	}
	return strings.Split(found, ",")
}

// joinFound renders keys (id -> KeyState) as a scan's Found.
func joinFound(keys map[string]string) string {
	var parts []string
	for id, st := range keys {
		parts = append(parts, id+"="+st)
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

// kmsKeyModel is the porcupine model of KMS keys, per Description.
var kmsKeyModel = porcupine.Model{
	Partition: partitionBy(kmsKeyDesc),
	Init:      func() any { return kmsKeyState{} },
	Step:      kmsKeyStep,
	Equal:     func(a, b any) bool { return a.(kmsKeyState) == b.(kmsKeyState) },
	DescribeOperation: func(input, output any) string {
		return describeKMSKeyOp(input.(kmsKeyInput), output.(kmsKeyOutput))
	},
	DescribeState: func(state any) string {
		s := state.(kmsKeyState)
		known := "no acknowledged key"
		if s.Known != "" {
			known = fmt.Sprintf("%s %s", s.Known, s.stateName())
		}
		return fmt.Sprintf("%s, up to %d more", known, s.Extra)
	},
}

// kmsKeyDesc is the KMS key model's partition: the Description.
func kmsKeyDesc(input any) string { return input.(kmsKeyInput).Desc }

// kmsKeyLin is the KMS key history.
var kmsKeyLin = linModel{name: "kms-keys", model: kmsKeyModel, key: kmsKeyDesc}

// describeKMSKeyOp renders a KMS key operation for people.
func describeKMSKeyOp(in kmsKeyInput, out kmsKeyOutput) string {
	call := fmt.Sprintf("%s(%q)", in.Op, in.Desc)
	if in.KeyID != "" {
		call = fmt.Sprintf("%s(%q, %s)", in.Op, in.Desc, in.KeyID)
	}
	switch {
	case out.Unknown:
		return call + " -> ? (unknown)"
	case out.Refused:
		return call + " -> refused"
	case out.NotFound:
		return call + " -> not found"
	case out.InvalidState:
		return call + " -> KMSInvalidStateException"
	case in.Op == kopCreate:
		return call + " -> " + out.KeyID
	case in.Op == kopDescribe:
		return call + " -> " + out.State
	case in.Op == kopScan:
		return call + " -> [" + out.Found + "]"
	}
	return call + " -> ok"
}

// kmsAliasOp is an operation of the alias workload.
type kmsAliasOp string

const (
	// aopCreate is CreateAlias.
	aopCreate kmsAliasOp = "create-alias"
	// aopUpdate is UpdateAlias.
	aopUpdate kmsAliasOp = "update-alias"
	// aopDelete is DeleteAlias.
	aopDelete kmsAliasOp = "delete-alias"
	// aopRead is DescribeKey of the alias, or one alias's entry (or
	// absence) in a ListAliases.
	aopRead kmsAliasOp = "read-alias"
)

// kmsAliasInput is an alias operation's input.
type kmsAliasInput struct {
	Op kmsAliasOp
	// Alias is the alias name: the partition.
	Alias string
	// Target is the key a create or an update points the alias at.
	Target string
}

// kmsAliasOutput is an alias operation's outcome.
type kmsAliasOutput struct {
	// Unknown says the outcome is not known (return at infinity).
	Unknown bool
	// Target is a read's key id, "" when the alias does not exist.
	Target string
	// Exists is a create's AlreadyExistsException.
	Exists bool
	// NotFound is an update's or a delete's NotFoundException.
	NotFound bool
}

// kmsAliasStep is the sequential specification of an alias: a register
// holding its target key id, "" while the alias does not exist. The
// targets are keys that stay Enabled all run, so no key-state rule refuses
// an alias operation.
func kmsAliasStep(state, input, output any) (bool, any) {
	s, in, out := state.(string), input.(kmsAliasInput), output.(kmsAliasOutput)
	switch in.Op {
	case aopCreate:
		switch {
		case out.Unknown:
			if s == "" {
				return true, in.Target
			}
			return true, s
		case out.Exists:
			return s != "", s
		}
		return s == "", in.Target
	case aopUpdate:
		switch {
		case out.Unknown:
			if s != "" {
				return true, in.Target
			}
			return true, s
		case out.NotFound:
			return s == "", s
		}
		return s != "", in.Target
	case aopDelete:
		switch {
		case out.Unknown:
			return true, ""
		case out.NotFound:
			return s == "", s
		}
		return s != "", ""
	case aopRead:
		return out.Unknown || out.Target == s, s
	}
	return false, s
}

// kmsAliasModel is the porcupine model of aliases, per alias name.
var kmsAliasModel = porcupine.Model{
	Partition: partitionBy(kmsAliasName),
	Init:      func() any { return "" },
	Step:      kmsAliasStep,
	Equal:     func(a, b any) bool { return a.(string) == b.(string) },
	DescribeOperation: func(input, output any) string {
		return describeKMSAliasOp(input.(kmsAliasInput), output.(kmsAliasOutput))
	},
	DescribeState: func(state any) string {
		if state.(string) == "" {
			return "absent"
		}
		return "-> " + state.(string)
	},
}

// kmsAliasName is the alias model's partition: the alias name.
func kmsAliasName(input any) string { return input.(kmsAliasInput).Alias }

// kmsAliasLin is the alias history.
var kmsAliasLin = linModel{name: "kms-aliases", model: kmsAliasModel, key: kmsAliasName}

// describeKMSAliasOp renders an alias operation for people.
func describeKMSAliasOp(in kmsAliasInput, out kmsAliasOutput) string {
	call := fmt.Sprintf("%s(%q)", in.Op, in.Alias)
	if in.Target != "" {
		call = fmt.Sprintf("%s(%q, %s)", in.Op, in.Alias, in.Target)
	}
	switch {
	case out.Unknown:
		return call + " -> ? (unknown)"
	case out.Exists:
		return call + " -> AlreadyExistsException"
	case out.NotFound:
		return call + " -> not found"
	case in.Op == aopRead && out.Target == "":
		return call + " -> absent"
	case in.Op == aopRead:
		return call + " -> " + out.Target
	}
	return call + " -> ok"
}
