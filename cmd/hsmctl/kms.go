package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/hsmsim/hsmsim/cluster"
	"github.com/hsmsim/hsmsim/cluster/bringup"
	"github.com/hsmsim/hsmsim/cluster/local"
)

// Names of the KMS side of a deployment.
const (
	// DefaultKMSAddr is the endpoint's default address.
	DefaultKMSAddr = "127.0.0.1:4599"
	// Region is the simulated region.
	Region = "us-east-1"
	// credentialsProfile is the profile hsmctl up writes.
	credentialsProfile = "hsmsim"
	// fleetUser is the KMS fleet's crypto user.
	fleetUser = "kms"
	// FleetRoleTag and FleetRole mark the KMS fleet's cluster.
	FleetRoleTag = cluster.RoleTag
	// FleetRole is FleetRoleTag's value on the KMS fleet.
	FleetRole = cluster.RoleKMSFleet
	// customKeyStoreName is the name of the store hsmctl up creates.
	customKeyStoreName = "hsmsim-custom-key-store"
)

// kmsResult is what starting the KMS side produced.
type kmsResult struct {
	Endpoint         string `json:"endpoint"`
	CredentialsFile  string `json:"credentials_file"`
	AccessKeyID      string `json:"access_key_id"`
	FleetClusterID   string `json:"fleet_cluster_id"`
	CustomKeyStoreID string `json:"custom_key_store_id,omitempty"`
	secretKey        string
}

// startKMS brings up the KMS fleet, writes credentials, starts the endpoint
// and, when customerClusterID is set, creates and connects a custom key
// store bound to that cluster with kmsuser's password.
func (d *deployment) startKMS(ctx context.Context, anyAuth bool, customerClusterID, trustAnchorPEM, kmsuserPassword string) (*kmsResult, error) {
	fleet, err := bringup.Cluster(ctx, d.mgr, bringup.Spec{AZs: cluster.DefaultAZs, PerAZ: 1, Dir: filepath.Join(d.dir, "kms"),
		Tags: map[string]string{cluster.RoleTag: cluster.RoleKMSFleet}, CryptoUser: fleetUser, Logger: d.log})
	if err != nil {
		return nil, fmt.Errorf("KMS fleet: %w", err)
	}
	res := &kmsResult{FleetClusterID: fleet.ClusterID}
	if res.AccessKeyID, res.secretKey, res.CredentialsFile, err = d.writeCredentials(); err != nil {
		return nil, err
	}
	addr := DefaultKMSAddr
	if ln, err := net.Listen("tcp", addr); err == nil {
		ln.Close()
	} else if addr, err = freeLoopback(); err != nil {
		return nil, err
	}
	binary, err := local.FindBinary("kmsproxy")
	if err != nil {
		return nil, err
	}
	args := []string{"--addr", addr, "--deployment-dir", d.dir, "--data-dir", filepath.Join(d.dir, "kms"),
		"--credentials-file", res.CredentialsFile, "--region", Region,
		"--fleet-cluster-id", fleet.ClusterID, "--fleet-password-file", fleet.CryptoPasswordFile}
	if anyAuth {
		args = append(args, "--auth", "any")
	}
	rt, err := d.prov.StartProgram(ctx, binary, "kmsproxy", args, addr)
	if err != nil {
		return nil, err
	}
	if err := d.mgr.Store().Update(func(st *cluster.State) error {
		if st.Processes == nil {
			st.Processes = map[string]cluster.Runtime{}
		}
		st.Processes["kmsproxy"] = rt
		if st.Endpoints == nil {
			st.Endpoints = map[string]string{}
		}
		st.Endpoints["kms"] = "http://" + addr
		return nil
	}); err != nil {
		return nil, err
	}
	res.Endpoint = "http://" + addr
	if customerClusterID == "" {
		return res, nil
	}
	cl := kmsClient(res.Endpoint, res.AccessKeyID, res.secretKey)
	out, err := cl.CreateCustomKeyStore(ctx, &kms.CreateCustomKeyStoreInput{
		CustomKeyStoreName: aws.String(customKeyStoreName), CloudHsmClusterId: aws.String(customerClusterID),
		TrustAnchorCertificate: aws.String(trustAnchorPEM), KeyStorePassword: aws.String(kmsuserPassword),
	})
	if err != nil {
		return nil, fmt.Errorf("create the custom key store: %w", err)
	}
	res.CustomKeyStoreID = aws.ToString(out.CustomKeyStoreId)
	if _, err := cl.ConnectCustomKeyStore(ctx, &kms.ConnectCustomKeyStoreInput{CustomKeyStoreId: out.CustomKeyStoreId}); err != nil {
		return nil, fmt.Errorf("connect the custom key store: %w", err)
	}
	return res, waitConnected(ctx, cl, res.CustomKeyStoreID)
}

// waitConnected waits until the store is CONNECTED, or fails when it is FAILED.
func waitConnected(ctx context.Context, cl *kms.Client, id string) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		out, err := cl.DescribeCustomKeyStores(ctx, &kms.DescribeCustomKeyStoresInput{CustomKeyStoreId: aws.String(id)})
		if err != nil {
			return err
		}
		if len(out.CustomKeyStores) == 1 {
			switch s := out.CustomKeyStores[0]; s.ConnectionState {
			case kmstypes.ConnectionStateTypeConnected:
				return nil
			case kmstypes.ConnectionStateTypeFailed:
				return fmt.Errorf("the custom key store failed to connect: %s", s.ConnectionErrorCode)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return errors.New("the custom key store did not connect within 60s")
}

// kmsClient is an AWS SDK KMS client for the endpoint.
func kmsClient(endpoint, accessKey, secretKey string) *kms.Client {
	return kms.New(kms.Options{
		Region:       Region,
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider(accessKey, secretKey, ""),
	})
}

// writeCredentials creates an access key and writes it as an AWS shared
// credentials file (profile "hsmsim"), readable by its owner only.
func (d *deployment) writeCredentials() (accessKey, secretKey, path string, err error) {
	const upper = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	const secretChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	pick := func(alphabet string, n int) (string, error) {
		b := make([]byte, n)
		if _, err := rand.Read(b); err != nil {
			return "", err
		}
		for i := range b {
			b[i] = alphabet[int(b[i])%len(alphabet)]
		}
		return string(b), nil
	}
	if accessKey, err = pick(upper, 16); err != nil {
		return
	}
	accessKey = "AKIA" + accessKey
	if secretKey, err = pick(secretChars, 40); err != nil {
		return
	}
	path = filepath.Join(d.dir, "credentials")
	body := fmt.Sprintf("[%s]\naws_access_key_id = %s\naws_secret_access_key = %s\n", credentialsProfile, accessKey, secretKey)
	err = os.WriteFile(path, []byte(body), 0o600)
	return
}

func freeLoopback() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
