package main

import (
	"github.com/hsmsim/hsmsim/kmsproxy"
)

// buildServices builds the services the endpoint serves from cfg:
// CloudHSM v2 over the cluster.Store and PKI in cfg.DeploymentDir, and KMS
// with its metadata store in cfg.DataDir, its fleet cluster
// cfg.FleetClusterID (crypto user password in cfg.FleetPasswordFile) and
// cfg.Server.Clock.
//
// TODO(lead): not wired yet. It returns no services, so every AWS call
// answers UnknownOperationException; the admin endpoints work. Complete it
// once kmsproxy/kms and kmsproxy/cloudhsm exist. It is the only place that
// needs to change: run passes the result to kmsproxy.Config.Services.
func buildServices(cfg config) ([]kmsproxy.Service, error) {
	_ = cfg
	return nil, nil
}
