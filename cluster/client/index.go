package client

import (
	"sync"

	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

// maxTrackedKeys bounds the keys whose last write an indexTracker
// remembers. Past it, the tracker forgets them all and raises its floor to
// the highest index it forgets: calls on those keys wait as long as before
// the tracking, never less.
const maxTrackedKeys = 1 << 16

// indexTracker scopes read-your-writes for calls on one key (Encrypt,
// Decrypt, Sign, Verify, GenerateMac, VerifyMac, WrapKey, GetAttributes).
// Such a call depends only on the writes to its keys, and to users (a
// deleted or changed user changes what its sessions may do), so it carries
// the highest index of those writes, not every write the Client observed.
//
// That is what keeps crypto going on the HSMs that remain after the
// leader's loss (DESIGN.md invariant 6): the last write the Client saw,
// say a key creation answered by the old leader, may be committed without
// the survivors knowing it until a new leader is elected. With the
// Client-wide index, every crypto call would wait for that election; with
// the key's own index, only calls on that new key do.
type indexTracker struct {
	mu sync.Mutex
	// keys maps a key handle to the index of the last write to it this
	// Client observed.
	keys map[uint64]uint64
	// floor is the index every key-scoped call carries at least: the
	// replica index at login (what existed before this Client), and the
	// writes of forgotten keys.
	floor uint64
	// other is the highest index of the writes that are not to one key
	// (user management, passwords, activation).
	other uint64
}

func newIndexTracker() *indexTracker {
	return &indexTracker{keys: make(map[uint64]uint64)}
}

// login raises the floor to a replica's applied index at login.
func (t *indexTracker) login(index uint64) {
	t.mu.Lock()
	t.floor = max(t.floor, index)
	t.mu.Unlock()
}

// wrote records a successful write's index: under the keys it wrote (from
// the request's handle or the reply's new keys), else as a write to no key
// in particular. A failed write is not recorded: its outcome is unknown to
// the caller, so read-your-writes does not cover it (HSMs send its index
// only once applied).
func (t *indexTracker) wrote(index uint64, args, reply any) {
	handles := writtenKeys(args, reply)
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(handles) == 0 {
		t.other = max(t.other, index)
		return
	}
	if len(t.keys)+len(handles) > maxTrackedKeys {
		for _, i := range t.keys {
			t.floor = max(t.floor, i)
		}
		clear(t.keys)
	}
	for _, h := range handles {
		t.keys[h] = max(t.keys[h], index)
	}
}

// forLogin returns the index a login must carry: that of the last write
// to users (a new user, a changed password) this Client made.
func (t *indexTracker) forLogin() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.other
}

// forCall returns the index a key-scoped call must carry, and false for
// any other call (which carries the Client-wide observed index).
func (t *indexTracker) forCall(args any) (uint64, bool) {
	handles := readKeys(args)
	if len(handles) == 0 {
		return 0, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	index := max(t.floor, t.other)
	for _, h := range handles {
		index = max(index, t.keys[h])
	}
	return index, true
}

// readKeys returns the keys a key-scoped read or crypto call uses; nil
// for any other call.
func readKeys(args any) []uint64 {
	switch r := args.(type) {
	case *hsmv1.EncryptRequest:
		return []uint64{r.GetHandle()}
	case *hsmv1.DecryptRequest:
		return []uint64{r.GetHandle()}
	case *hsmv1.SignRequest:
		return []uint64{r.GetHandle()}
	case *hsmv1.VerifyRequest:
		return []uint64{r.GetHandle()}
	case *hsmv1.GenerateMacRequest:
		return []uint64{r.GetHandle()}
	case *hsmv1.VerifyMacRequest:
		return []uint64{r.GetHandle()}
	case *hsmv1.GetAttributesRequest:
		return []uint64{r.GetHandle()}
	case *hsmv1.WrapKeyRequest:
		return []uint64{r.GetWrappingHandle(), r.GetKeyHandle()}
	}
	return nil
}

// writtenKeys returns the keys a successful write changed or created; nil
// for a write that is not to keys.
func writtenKeys(args, reply any) []uint64 {
	switch r := args.(type) {
	case *hsmv1.SetAttributeRequest:
		return []uint64{r.GetHandle()}
	case *hsmv1.ShareKeyRequest:
		return []uint64{r.GetHandle()}
	case *hsmv1.UnshareKeyRequest:
		return []uint64{r.GetHandle()}
	case *hsmv1.DeleteKeyRequest:
		return []uint64{r.GetHandle()}
	}
	switch r := reply.(type) {
	case *hsmv1.GenerateSymmetricKeyResponse:
		return []uint64{r.GetKey().GetHandle()}
	case *hsmv1.UnwrapKeyResponse:
		return []uint64{r.GetKey().GetHandle()}
	case *hsmv1.GenerateKeyPairResponse:
		return []uint64{r.GetPublicKey().GetHandle(), r.GetPrivateKey().GetHandle()}
	}
	return nil
}
