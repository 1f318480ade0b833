package nodetest

import (
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

// AnonymousControl returns a ClusterService client for node i that presents
// no client certificate, as a customer's client or an attacker without the
// control plane's certificate would: calls that change anything must be
// refused.
func (c *Cluster) AnonymousControl(i int) hsmv1.ClusterServiceClient {
	return hsmv1.NewClusterServiceClient(c.conn(i, nil))
}
