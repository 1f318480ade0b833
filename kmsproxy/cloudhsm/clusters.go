package cloudhsm

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/hsmsim/hsmsim/cluster"
	"github.com/hsmsim/hsmsim/kmsproxy/awsjson"
)

type createClusterInput struct {
	BackupRetentionPolicy *retentionPolicy `json:"BackupRetentionPolicy"`
	HsmType               *string          `json:"HsmType"`
	SourceBackupID        *string          `json:"SourceBackupId"`
	SubnetIDs             []string         `json:"SubnetIds"`
	NetworkType           *string          `json:"NetworkType"`
	TagList               []tagInput       `json:"TagList"`
	Mode                  *string          `json:"Mode"`
}

// createCluster records a cluster in the subnets' AZs. It has no HSM yet:
// UNINITIALIZED, or, from a backup, waiting for its first HSM to restore it.
func (s *Service) createCluster(ctx context.Context, r *awsjson.Request) (any, error) {
	var in createClusterInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	if err := checkListLength("subnetIds", in.SubnetIDs, in.SubnetIDs != nil, 1, 10); err != nil {
		return nil, err
	}
	var v awsjson.Validator
	v.Required("HsmType", in.HsmType != nil)
	v.Required("SubnetIds", in.SubnetIDs != nil)
	checkHsmType(&v, in.HsmType)
	for i := range in.SubnetIDs {
		checkPattern(&v, fmt.Sprintf("subnetIds.%d.member", i+1), &in.SubnetIDs[i], subnetIDPattern)
	}
	checkPattern(&v, "SourceBackupId", in.SourceBackupID, backupARNPattern)
	checkRetention(&v, in.BackupRetentionPolicy)
	v.Enum("NetworkType", in.NetworkType, "IPV4", "DUALSTACK")
	v.Enum("Mode", in.Mode, cluster.ModeFIPS, cluster.ModeNonFIPS)
	if err := checkTags(&v, "tagList", in.TagList); err != nil {
		return nil, err
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	if err := reservedTags(in.TagList); err != nil {
		return nil, err
	}
	days, err := retentionDays(in.BackupRetentionPolicy)
	if err != nil {
		return nil, err
	}
	if in.NetworkType != nil && *in.NetworkType != "IPV4" {
		return nil, invalidRequest("NetworkType %s is not supported: the HSMs of a local deployment listen on IPv4 loopback.", *in.NetworkType)
	}
	setup := cluster.ClusterSetup{HsmType: *in.HsmType, Mode: cluster.ModeFIPS}
	if in.Mode != nil {
		setup.Mode = *in.Mode
	}
	if !slices.Contains(cluster.HsmTypes, setup.HsmType) {
		return nil, invalidRequest("HsmType %s is not supported. Use one of %s.", setup.HsmType, strings.Join(cluster.HsmTypes, ", "))
	}
	if setup.Mode == cluster.ModeNonFIPS && setup.HsmType != cluster.HsmTypeHsm2m {
		return nil, invalidRequest("NON_FIPS mode is available only with HsmType %s.", cluster.HsmTypeHsm2m)
	}
	st, err := s.mgr.Store().Load()
	if err != nil {
		return nil, err
	}
	create := cluster.CreateClusterInput{BackupRetentionDays: days, Tags: tagMap(in.TagList)}
	if in.SourceBackupID != nil {
		id := *in.SourceBackupID
		if i := strings.LastIndex(id, "backup/"); i >= 0 {
			id = id[i+len("backup/"):]
		}
		b := st.Backup(id)
		if b == nil || b.State == cluster.BackupDeleted || fleetBackup(st, b) {
			return nil, notFound("backup", id)
		}
		if b.State != cluster.BackupReady {
			return nil, invalidRequest("Backup %s is %s; only a READY backup can be restored into a cluster.", id, b.State)
		}
		if src := st.Cluster(b.ClusterID); src != nil && src.Mode != setup.Mode {
			return nil, invalidRequest("Backup %s is of a %s cluster; it restores only into a %s cluster.", id, src.Mode, src.Mode)
		}
		create.SourceBackupID = id
	}
	setup.Subnets, setup.VpcID, err = s.placeSubnets(st, in.SubnetIDs)
	if err != nil {
		return nil, err
	}
	create.AZs = slices.Sorted(maps.Keys(setup.Subnets))

	ctx, cancel := detached(ctx)
	defer cancel()
	c, err := s.mgr.CreateCluster(ctx, create)
	if err != nil {
		return nil, err
	}
	id := c.ClusterID
	c, err = s.mgr.SetupCluster(id, setup)
	if err != nil {
		// Checked above; should it fail anyway, the half-made cluster goes.
		if _, derr := s.mgr.DeleteCluster(ctx, id); derr != nil {
			s.log.Warn("delete a cluster whose setup failed", "error", derr)
		}
		return nil, err
	}
	return map[string]any{"Cluster": s.clusterOut(c)}, nil
}

// azs are the region's availability zones: the local deployment's three.
func (s *Service) azs() []string {
	out := make([]string, 0, len(cluster.DefaultAZs))
	for _, az := range cluster.DefaultAZs {
		out = append(out, s.region+az[len(az)-1:])
	}
	return out
}

// placeSubnets maps each subnet to an AZ (see the package comment): a
// subnet the deployment knows keeps its AZ and VPC, an unknown one takes the
// next free AZ. It returns the mapping AZ → subnet and the VPC of the known
// subnets ("" if none).
func (s *Service) placeSubnets(st *cluster.State, subnetIDs []string) (map[string]string, string, error) {
	type place struct{ az, vpc string }
	known := map[string]place{}
	for _, c := range st.Clusters {
		for az, subnet := range c.SubnetMapping {
			known[subnet] = place{az, c.VpcID}
		}
	}
	out := map[string]string{}
	taken := map[string]string{}
	vpc := ""
	for _, id := range subnetIDs {
		if _, dup := taken[id]; dup {
			return nil, "", invalidRequest("Subnet %s is listed twice.", id)
		}
		taken[id] = ""
		p, ok := known[id]
		if !ok {
			continue
		}
		if other, clash := out[p.az]; clash {
			return nil, "", invalidRequest("Subnets %s and %s are both in %s; a cluster has at most one subnet per Availability Zone.", other, id, p.az)
		}
		if vpc != "" && p.vpc != vpc {
			return nil, "", invalidRequest("The subnets must be in one VPC; %s is in %s, not %s.", id, p.vpc, vpc)
		}
		out[p.az], vpc = id, p.vpc
	}
	free := slices.DeleteFunc(s.azs(), func(az string) bool { _, used := out[az]; return used })
	for _, id := range subnetIDs {
		if _, ok := known[id]; ok {
			continue
		}
		if len(free) == 0 {
			return nil, "", invalidRequest("The region has %d Availability Zones (%s); a cluster has at most one subnet in each.",
				len(s.azs()), strings.Join(s.azs(), ", "))
		}
		out[free[0]], free = id, free[1:]
	}
	return out, vpc, nil
}

type describeClustersInput struct {
	Filters    map[string][]string `json:"Filters"`
	NextToken  *string             `json:"NextToken"`
	MaxResults *int64              `json:"MaxResults"`
}

// describeClusters lists the clusters, refreshed from their HSMs, oldest
// first. A DELETED cluster is listed only when the states filter asks.
func (s *Service) describeClusters(ctx context.Context, r *awsjson.Request) (any, error) {
	var in describeClustersInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsjson.Validator
	if err := checkFilters(&v, in.Filters); err != nil {
		return nil, err
	}
	checkPaging(&v, in.MaxResults, 25, in.NextToken)
	if err := v.Err(); err != nil {
		return nil, err
	}
	if err := unknownFilters(in.Filters, "clusterIds", "states", "vpcIds"); err != nil {
		return nil, err
	}
	selected := func(c *cluster.Cluster) bool {
		return !c.IsKMSFleet() && matches(in.Filters, "clusterIds", c.ClusterID) && matches(in.Filters, "vpcIds", c.VpcID) &&
			(c.State != cluster.ClusterDeleted || slices.Contains(in.Filters["states"], string(cluster.ClusterDeleted)))
	}
	st, err := s.mgr.Store().Load()
	if err != nil {
		return nil, err
	}
	for _, c := range st.Clusters {
		if selected(c) && c.State != cluster.ClusterDeleted && len(c.Hsms) > 0 {
			s.refresh(ctx, c.ClusterID)
		}
	}
	if st, err = s.mgr.Store().Load(); err != nil {
		return nil, err
	}
	var clusters []*cluster.Cluster
	for _, c := range st.Clusters {
		if selected(c) && matches(in.Filters, "states", string(c.State)) {
			clusters = append(clusters, c)
		}
	}
	from, to, next, err := page("DescribeClusters", len(clusters), in.NextToken, in.MaxResults)
	if err != nil {
		return nil, err
	}
	out := make([]clusterShape, 0, to-from)
	for _, c := range clusters[from:to] {
		out = append(out, s.clusterOut(c))
	}
	return describeClustersOutput{Clusters: out, NextToken: next}, nil
}

type describeClustersOutput struct {
	Clusters  []clusterShape `json:"Clusters"`
	NextToken *string        `json:"NextToken,omitempty"`
}

// refresh reads a cluster's state from its HSMs; a failure leaves the
// records as they were, so it is logged.
func (s *Service) refresh(ctx context.Context, clusterID string) {
	if _, err := s.mgr.Refresh(ctx, clusterID); err != nil {
		s.log.Warn("refresh cluster", "cluster_id", clusterID, "error", err)
	}
}

// matches reports whether a filter admits value: an absent filter admits
// everything.
func matches(filters map[string][]string, name, value string) bool {
	want, ok := filters[name]
	return !ok || slices.Contains(want, value)
}

type initializeClusterInput struct {
	ClusterID   *string `json:"ClusterId"`
	SignedCert  *string `json:"SignedCert"`
	TrustAnchor *string `json:"TrustAnchor"`
}

// initializeCluster hands the signed cluster certificate and the trust
// anchor to the cluster's HSM. The HSM checks them at once, so the answer
// is INITIALIZED rather than AWS's INITIALIZE_IN_PROGRESS.
func (s *Service) initializeCluster(ctx context.Context, r *awsjson.Request) (any, error) {
	var in initializeClusterInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsjson.Validator
	v.Required("ClusterId", in.ClusterID != nil)
	v.Required("SignedCert", in.SignedCert != nil)
	v.Required("TrustAnchor", in.TrustAnchor != nil)
	checkPattern(&v, "ClusterId", in.ClusterID, clusterIDPattern)
	v.Length("SignedCert", in.SignedCert, 0, 20000)
	checkPattern(&v, "SignedCert", in.SignedCert, certPattern)
	v.Length("TrustAnchor", in.TrustAnchor, 0, 20000)
	checkPattern(&v, "TrustAnchor", in.TrustAnchor, certPattern)
	if err := v.Err(); err != nil {
		return nil, err
	}
	if _, err := s.visibleCluster(*in.ClusterID); err != nil {
		return nil, err
	}
	ctx, cancel := detached(ctx)
	defer cancel()
	c, err := s.mgr.InitializeCluster(ctx, *in.ClusterID, *in.SignedCert, *in.TrustAnchor)
	if err != nil {
		return nil, err
	}
	return map[string]any{
		"State":        string(c.State),
		"StateMessage": "Cluster is initialized. Activate it with the CloudHSM CLI to use it.",
	}, nil
}

type modifyClusterInput struct {
	HsmType               *string          `json:"HsmType"`
	BackupRetentionPolicy *retentionPolicy `json:"BackupRetentionPolicy"`
	ClusterID             *string          `json:"ClusterId"`
}

// modifyCluster changes a cluster's backup retention or migrates its HSM
// type (hsm1.medium → hsm2m.medium).
func (s *Service) modifyCluster(ctx context.Context, r *awsjson.Request) (any, error) {
	var in modifyClusterInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsjson.Validator
	v.Required("ClusterId", in.ClusterID != nil)
	checkPattern(&v, "ClusterId", in.ClusterID, clusterIDPattern)
	checkHsmType(&v, in.HsmType)
	checkRetention(&v, in.BackupRetentionPolicy)
	if err := v.Err(); err != nil {
		return nil, err
	}
	days, err := retentionDays(in.BackupRetentionPolicy)
	if err != nil {
		return nil, err
	}
	if _, err := s.visibleCluster(*in.ClusterID); err != nil {
		return nil, err
	}
	mod := cluster.ModifyClusterInput{BackupRetentionDays: days}
	if in.HsmType != nil {
		mod.HsmType = *in.HsmType
	}
	c, err := s.mgr.ModifyCluster(ctx, *in.ClusterID, mod)
	if err != nil {
		return nil, err
	}
	return map[string]any{"Cluster": s.clusterOut(c)}, nil
}

type clusterIDInput struct {
	ClusterID *string `json:"ClusterId"`
}

// deleteCluster deletes a cluster that has no HSMs.
func (s *Service) deleteCluster(ctx context.Context, r *awsjson.Request) (any, error) {
	var in clusterIDInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsjson.Validator
	v.Required("ClusterId", in.ClusterID != nil)
	checkPattern(&v, "ClusterId", in.ClusterID, clusterIDPattern)
	if err := v.Err(); err != nil {
		return nil, err
	}
	if _, err := s.visibleCluster(*in.ClusterID); err != nil {
		return nil, err
	}
	c, err := s.mgr.DeleteCluster(ctx, *in.ClusterID)
	if err != nil {
		return nil, err
	}
	return map[string]any{"Cluster": s.clusterOut(c)}, nil
}

// checkHsmType checks HsmType's length and pattern; whether the type is
// one hsmsim offers is a CloudHsmInvalidRequestException, checked later.
func checkHsmType(v *awsjson.Validator, hsmType *string) {
	v.Length("HsmType", hsmType, 0, 32)
	checkPattern(v, "HsmType", hsmType, hsmTypePattern)
}

// checkRetention checks a BackupRetentionPolicy's members.
func checkRetention(v *awsjson.Validator, p *retentionPolicy) {
	if p == nil {
		return
	}
	v.Enum("backupRetentionPolicy.type", p.Type, "DAYS")
	v.Length("backupRetentionPolicy.value", p.Value, 1, 3)
	checkPattern(v, "backupRetentionPolicy.value", p.Value, retentionPattern)
}

// retentionDays returns a policy's days, 7..379, or 0 for no policy.
func retentionDays(p *retentionPolicy) (int, error) {
	if p == nil {
		return 0, nil
	}
	if p.Type == nil || p.Value == nil {
		return 0, invalidRequest("A BackupRetentionPolicy needs a Type (DAYS) and a Value.")
	}
	days, err := strconv.Atoi(*p.Value)
	if err != nil || days < 7 || days > 379 {
		return 0, invalidRequest("The backup retention period must be between 7 and 379 days, not %s.", *p.Value)
	}
	return days, nil
}
