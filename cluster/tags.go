package cluster

import (
	"errors"
	"fmt"
	"maps"
	"strings"
)

// Role tags: the tag RoleTag = RoleKMSFleet marks the cluster that backs
// KMS's default key store. It belongs to the KMS endpoint, not to a CloudHSM
// customer: the CloudHSM API neither shows it nor resets it.
const (
	RoleTag      = "hsmsim:role"
	RoleKMSFleet = "kms-fleet"
)

// MaxTags is CloudHSM's limit of tags per cluster or backup.
const MaxTags = 50

// ErrTagLimit is returned when tagging would leave a resource with more than
// MaxTags tags (CloudHsmResourceLimitExceededException).
var ErrTagLimit = errors.New("tag limit exceeded")

// IsKMSFleet reports whether the cluster is the KMS fleet.
func (c *Cluster) IsKMSFleet() bool { return c.Tags[RoleTag] == RoleKMSFleet }

// Tags returns a copy of the tags of a cluster or a backup, named by its id
// (cluster-… or backup-…). A deleted resource is not found.
func (m *Manager) Tags(resourceID string) (map[string]string, error) {
	st, err := m.store.Load()
	if err != nil {
		return nil, err
	}
	tags, err := tagsOf(st, resourceID)
	if err != nil {
		return nil, err
	}
	return maps.Clone(*tags), nil
}

// TagResource adds tags to a cluster or a backup, replacing the values of
// keys it already has. It returns the resource's tags afterwards.
func (m *Manager) TagResource(resourceID string, tags map[string]string) (map[string]string, error) {
	var out map[string]string
	err := m.store.Update(func(st *State) error {
		cur, err := tagsOf(st, resourceID)
		if err != nil {
			return err
		}
		next := maps.Clone(*cur)
		if next == nil {
			next = map[string]string{}
		}
		maps.Copy(next, tags)
		if len(next) > MaxTags {
			return fmt.Errorf("%w: resource %s would have %d tags; the limit is %d", ErrTagLimit, resourceID, len(next), MaxTags)
		}
		*cur, out = next, maps.Clone(next)
		return nil
	})
	return out, err
}

// UntagResource removes tags from a cluster or a backup by key; keys it does
// not have are ignored.
func (m *Manager) UntagResource(resourceID string, keys []string) error {
	return m.store.Update(func(st *State) error {
		cur, err := tagsOf(st, resourceID)
		if err != nil {
			return err
		}
		next := maps.Clone(*cur)
		for _, k := range keys {
			delete(next, k)
		}
		if len(next) == 0 {
			next = nil
		}
		*cur = next
		return nil
	})
}

// tagsOf returns where st keeps the tags of resourceID.
func tagsOf(st *State, resourceID string) (*map[string]string, error) {
	switch {
	case strings.HasPrefix(resourceID, "cluster-"):
		if c := st.Cluster(resourceID); c != nil && c.State != ClusterDeleted {
			return &c.Tags, nil
		}
	case strings.HasPrefix(resourceID, "backup-"):
		if b := st.Backup(resourceID); b != nil && b.State != BackupDeleted {
			return &b.Tags, nil
		}
	}
	return nil, fmt.Errorf("%w: resource %s", ErrNotFound, resourceID)
}
