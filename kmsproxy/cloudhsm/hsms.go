package cloudhsm

import (
	"context"

	"github.com/hsmsim/hsmsim/cluster"
	"github.com/hsmsim/hsmsim/kmsproxy/awsjson"
)

type createHsmInput struct {
	ClusterID        *string `json:"ClusterId"`
	AvailabilityZone *string `json:"AvailabilityZone"`
	// IpAddress is accepted and ignored: HSMs listen on loopback.
	IPAddress *string `json:"IpAddress"`
}

// createHsm starts an HSM in the AZ's subnet. The first HSM of a new
// cluster starts uninitialized and yields the cluster CSR; later ones join
// an initialized cluster. The HSM is running when the answer comes, so it
// is ACTIVE rather than AWS's CREATE_IN_PROGRESS.
func (s *Service) createHsm(ctx context.Context, r *awsjson.Request) (any, error) {
	var in createHsmInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsjson.Validator
	v.Required("ClusterId", in.ClusterID != nil)
	v.Required("AvailabilityZone", in.AvailabilityZone != nil)
	checkPattern(&v, "ClusterId", in.ClusterID, clusterIDPattern)
	checkPattern(&v, "AvailabilityZone", in.AvailabilityZone, azPattern)
	checkPattern(&v, "IpAddress", in.IPAddress, ipPattern)
	if err := v.Err(); err != nil {
		return nil, err
	}
	c, err := s.visibleCluster(*in.ClusterID)
	if err != nil {
		return nil, err
	}
	ctx, cancel := detached(ctx)
	defer cancel()
	h, err := s.mgr.CreateHsm(ctx, c.ClusterID, *in.AvailabilityZone)
	if err != nil {
		return nil, err
	}
	if c.State == cluster.ClusterUninitialized && c.SourceBackupID == "" {
		s.learnHsmCert(ctx, h.HsmID, h.Runtime.APIAddr)
	}
	return map[string]any{"Hsm": hsmOut(c, h)}, nil
}

type deleteHsmInput struct {
	ClusterID *string `json:"ClusterId"`
	HsmID     *string `json:"HsmId"`
	EniID     *string `json:"EniId"`
	EniIP     *string `json:"EniIp"`
}

// deleteHsm removes an HSM, named by its id, its ENI id or its ENI address.
// Every local HSM's ENI address is 127.0.0.1, so the address names an HSM
// only in a cluster of one.
func (s *Service) deleteHsm(ctx context.Context, r *awsjson.Request) (any, error) {
	var in deleteHsmInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsjson.Validator
	v.Required("ClusterId", in.ClusterID != nil)
	checkPattern(&v, "ClusterId", in.ClusterID, clusterIDPattern)
	checkPattern(&v, "HsmId", in.HsmID, hsmIDPattern)
	checkPattern(&v, "EniId", in.EniID, eniIDPattern)
	checkPattern(&v, "EniIp", in.EniIP, ipPattern)
	if err := v.Err(); err != nil {
		return nil, err
	}
	if in.HsmID == nil && in.EniID == nil && in.EniIP == nil {
		return nil, invalidRequest("Specify the HSM to delete by HsmId, EniId or EniIp.")
	}
	c, err := s.visibleCluster(*in.ClusterID)
	if err != nil {
		return nil, err
	}
	var found []*cluster.HSM
	for _, h := range c.Hsms {
		if (in.HsmID == nil || h.HsmID == *in.HsmID) && (in.EniID == nil || h.EniID == *in.EniID) &&
			(in.EniIP == nil || h.EniIP == *in.EniIP) {
			found = append(found, h)
		}
	}
	switch {
	case len(found) == 0:
		return nil, notFound("HSM in cluster", c.ClusterID)
	case len(found) > 1:
		return nil, invalidRequest("%d HSMs of cluster %s have ENI address %s; name the HSM by HsmId or EniId.", len(found), c.ClusterID, *in.EniIP)
	}
	ctx, cancel := detached(ctx)
	defer cancel()
	if err := s.mgr.DeleteHsm(ctx, c.ClusterID, found[0].HsmID); err != nil {
		return nil, err
	}
	s.forgetHsmCert(found[0].HsmID)
	return map[string]any{"HsmId": found[0].HsmID}, nil
}
