package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hsmsim/hsmsim/cluster"
	"github.com/hsmsim/hsmsim/kmsproxy"
	"github.com/hsmsim/hsmsim/kmsproxy/cloudhsm"
	"github.com/hsmsim/hsmsim/kmsproxy/kms"
)

// fleetUser is the KMS fleet's crypto user (hsmctl up creates it).
const fleetUser = "kms"

// buildServices builds the services the endpoint serves from cfg: CloudHSM
// v2 over the control plane in cfg.DeploymentDir, and, when a fleet is
// configured, KMS with its metadata store in cfg.DataDir. It returns a
// function that closes them. Without a deployment it serves nothing but the
// admin endpoints.
func buildServices(cfg config) ([]kmsproxy.Service, func() error, error) {
	none := func() error { return nil }
	if cfg.DeploymentDir == "" {
		return nil, none, nil
	}
	log := cfg.Server.Logger
	store, err := cluster.NewStore(cfg.DeploymentDir)
	if err != nil {
		return nil, none, err
	}
	pki, err := cluster.LoadOrCreatePKI(store.Dir())
	if err != nil {
		return nil, none, err
	}
	prov, err := newProvisioner(cfg, store.Dir(), pki)
	if err != nil {
		return nil, none, err
	}
	mgr := cluster.NewManager(store, prov, pki, log)
	account := cfg.Server.Account
	if account == "" {
		account = kmsproxy.DefaultAccount
	}
	services := []kmsproxy.Service{cloudhsm.New(mgr, cfg.Region, account, log)}
	if cfg.FleetClusterID == "" {
		return services, none, nil
	}
	if cfg.DataDir == "" {
		return nil, none, errors.New("--data-dir is required with --fleet-cluster-id (the KMS metadata store lives there)")
	}
	pw, err := os.ReadFile(cfg.FleetPasswordFile)
	if err != nil {
		return nil, none, fmt.Errorf("fleet password: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	k, err := kms.New(ctx, kms.Config{
		DBPath: filepath.Join(cfg.DataDir, "kms.db"), Account: account, Region: cfg.Region, Clock: cfg.Server.Clock,
		Manager: mgr, Logger: log,
		Fleet: kms.FleetConfig{ClusterID: cfg.FleetClusterID, Username: fleetUser, Password: strings.TrimSpace(string(pw))},
	})
	if err != nil {
		return nil, none, fmt.Errorf("KMS service: %w", err)
	}
	return append(services, k), k.Close, nil
}
