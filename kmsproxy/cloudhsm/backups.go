package cloudhsm

import (
	"context"
	"slices"
	"strconv"

	"github.com/hsmsim/hsmsim/cluster"
	"github.com/hsmsim/hsmsim/kmsproxy/awsjson"
)

type describeBackupsInput struct {
	NextToken     *string             `json:"NextToken"`
	MaxResults    *int64              `json:"MaxResults"`
	Filters       map[string][]string `json:"Filters"`
	Shared        *bool               `json:"Shared"`
	SortAscending *bool               `json:"SortAscending"`
}

// describeBackups lists backups, newest first unless SortAscending. A
// DELETED backup is listed only when the states filter asks. Shared
// backups (another account's) do not exist here: Shared lists none.
func (s *Service) describeBackups(ctx context.Context, r *awsjson.Request) (any, error) {
	var in describeBackupsInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsjson.Validator
	if err := checkFilters(&v, in.Filters); err != nil {
		return nil, err
	}
	checkPaging(&v, in.MaxResults, 50, in.NextToken)
	if err := v.Err(); err != nil {
		return nil, err
	}
	if err := unknownFilters(in.Filters, "backupIds", "sourceBackupIds", "clusterIds", "states", "neverExpires"); err != nil {
		return nil, err
	}
	st, err := s.mgr.Store().Load()
	if err != nil {
		return nil, err
	}
	var backups []*cluster.Backup
	for _, b := range st.Backups {
		if fleetBackup(st, b) || in.Shared != nil && *in.Shared {
			continue
		}
		if b.State == cluster.BackupDeleted && !slices.Contains(in.Filters["states"], string(cluster.BackupDeleted)) {
			continue
		}
		if matches(in.Filters, "backupIds", b.BackupID) && matches(in.Filters, "sourceBackupIds", b.SourceBackup) &&
			matches(in.Filters, "clusterIds", b.ClusterID) && matches(in.Filters, "states", string(b.State)) &&
			matches(in.Filters, "neverExpires", strconv.FormatBool(b.NeverExpires)) {
			backups = append(backups, b)
		}
	}
	// The store keeps backups oldest first.
	if in.SortAscending == nil || !*in.SortAscending {
		slices.Reverse(backups)
	}
	from, to, next, err := page("DescribeBackups", len(backups), in.NextToken, in.MaxResults)
	if err != nil {
		return nil, err
	}
	out := make([]backupShape, 0, to-from)
	for _, b := range backups[from:to] {
		out = append(out, s.backupOut(st, b))
	}
	return describeBackupsOutput{Backups: out, NextToken: next}, nil
}

type describeBackupsOutput struct {
	Backups   []backupShape `json:"Backups"`
	NextToken *string       `json:"NextToken,omitempty"`
}

type backupIDInput struct {
	BackupID *string `json:"BackupId"`
}

// decodeBackupID decodes and validates a request naming one backup, and
// checks that this API shows the backup.
func (s *Service) decodeBackupID(r *awsjson.Request) (string, error) {
	var in backupIDInput
	if err := r.Decode(&in); err != nil {
		return "", err
	}
	var v awsjson.Validator
	v.Required("BackupId", in.BackupID != nil)
	checkPattern(&v, "BackupId", in.BackupID, backupIDPattern)
	if err := v.Err(); err != nil {
		return "", err
	}
	if _, _, err := s.visibleBackup(*in.BackupID); err != nil {
		return "", err
	}
	return *in.BackupID, nil
}

// deleteBackup marks a backup PENDING_DELETION; RestoreBackup can bring it
// back for 7 days.
func (s *Service) deleteBackup(ctx context.Context, r *awsjson.Request) (any, error) {
	id, err := s.decodeBackupID(r)
	if err != nil {
		return nil, err
	}
	return s.backupResult(s.mgr.DeleteBackup(id))
}

// restoreBackup returns a PENDING_DELETION backup to READY.
func (s *Service) restoreBackup(ctx context.Context, r *awsjson.Request) (any, error) {
	id, err := s.decodeBackupID(r)
	if err != nil {
		return nil, err
	}
	return s.backupResult(s.mgr.RestoreBackup(id))
}

type modifyBackupAttributesInput struct {
	BackupID     *string `json:"BackupId"`
	NeverExpires *bool   `json:"NeverExpires"`
}

// modifyBackupAttributes exempts a backup from the retention policy, or not.
func (s *Service) modifyBackupAttributes(ctx context.Context, r *awsjson.Request) (any, error) {
	var in modifyBackupAttributesInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsjson.Validator
	v.Required("BackupId", in.BackupID != nil)
	v.Required("NeverExpires", in.NeverExpires != nil)
	checkPattern(&v, "BackupId", in.BackupID, backupIDPattern)
	if err := v.Err(); err != nil {
		return nil, err
	}
	if _, _, err := s.visibleBackup(*in.BackupID); err != nil {
		return nil, err
	}
	return s.backupResult(s.mgr.SetNeverExpires(*in.BackupID, *in.NeverExpires))
}

// backupResult renders {"Backup": b} for the manager's answer.
func (s *Service) backupResult(b *cluster.Backup, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	st, err := s.mgr.Store().Load()
	if err != nil {
		return nil, err
	}
	return map[string]any{"Backup": s.backupOut(st, b)}, nil
}
