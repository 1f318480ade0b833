package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/hashicorp/go-hclog"

	"github.com/hsmsim/hsmsim/cluster"
	"github.com/hsmsim/hsmsim/cluster/bringup"
	"github.com/hsmsim/hsmsim/cluster/container"
	"github.com/hsmsim/hsmsim/internal/atomicfile"
)

// The container deployment (deploy/compose.yaml) runs these commands in
// one-shot hsmctl containers on its networks, with the deployment directory
// and every HSM container's slot directory mounted:
//
//   - compose init does what hsmctl up does before it starts the endpoint:
//     the customer's cluster and the KMS fleet, each one HSM per AZ in
//     claimed containers, and the endpoint's credentials and configuration
//     (kmsproxy.json, its --config), then exits; compose starts the endpoint
//     once it has succeeded.
//   - compose connect, once the endpoint is healthy, creates and connects
//     the custom key store through the KMS API, as hsmctl up does.
//   - compose status is hsmctl status plus the HSM containers.
//   - compose fault partition|isolate|heal are hsmctl's transport faults
//     (SetFaults). Real ones, on Docker's networks, are
//     scripts/docker-fault.sh's, on the Docker host.
//
// Both one-shots can run again: init finds what it did in compose.json,
// connect finds the key store by name.

// Files of a container deployment's directory.
const (
	// composeStateFile records what compose init and connect did.
	composeStateFile = "compose.json"
	// kmsproxyConfigFile is the endpoint's --config.
	kmsproxyConfigFile = "kmsproxy.json"
	// DefaultSlotsDir is where the one-shots see the HSM containers' slots.
	DefaultSlotsDir = "/provision"
	// composeKMSAddr is where the endpoint listens in its container.
	composeKMSAddr = "0.0.0.0:4599"
)

// composeState is compose.json.
type composeState struct {
	ClusterID          string `json:"cluster_id"`
	FleetClusterID     string `json:"fleet_cluster_id"`
	CustomerCA         string `json:"customer_ca"`
	AdminPasswordFile  string `json:"admin_password_file"`
	KmsuserPassword    string `json:"kmsuser_password_file"`
	CredentialsFile    string `json:"credentials_file"`
	KMSProxyConfig     string `json:"kmsproxy_config"`
	CustomKeyStoreID   string `json:"custom_key_store_id,omitempty"`
	CustomKeyStoreName string `json:"custom_key_store_name,omitempty"`
}

func composeCommands() []*command {
	return []*command{
		{name: "compose init", summary: "containers: bring up the customer cluster and the KMS fleet in claimed HSM containers and write the endpoint's configuration (a one-shot of deploy/compose.yaml)", flags: composeInitFlags, run: runComposeInit},
		{name: "compose connect", summary: "containers: create and connect the custom key store through the running endpoint (a one-shot of deploy/compose.yaml)", flags: composeConnectFlags, run: runComposeConnect},
		{name: "compose status", summary: "containers: hsmctl status, and which HSM each container holds", flags: composeDirFlags, run: runComposeStatus},
		{name: "compose fault partition", summary: "containers: cut an AZ off in the HSMs' transports (SetFaults)", flags: composeFaultFlags("az"), run: runComposeFault("partition")},
		{name: "compose fault isolate", summary: "containers: cut one HSM off from every other in the transports (SetFaults)", flags: composeFaultFlags("hsm"), run: runComposeFault("isolate")},
		{name: "compose fault heal", summary: "containers: clear every transport fault", flags: composeFaultFlags(""), run: runComposeFault("heal")},
	}
}

type composeDirOpts struct {
	dir, slotsDir *string
}

func composeDirFlags(fs *flag.FlagSet) any {
	return &composeDirOpts{
		dir:      fs.String("dir", DefaultDir, "deployment directory (the containers mount it at /deploy)"),
		slotsDir: fs.String("slots-dir", DefaultSlotsDir, "directory of the HSM containers' slot directories, one folder per AZ"),
	}
}

// openComposeDeployment opens the deployment in dir over the container
// provisioner.
func openComposeDeployment(o *composeDirOpts, create bool, log hclog.Logger) (*deployment, *container.Provisioner, error) {
	if !create {
		if _, err := os.Stat(filepath.Join(*o.dir, cluster.StateFile)); err != nil {
			return nil, nil, fmt.Errorf("no deployment in %s (hsmctl compose init makes one): %w", *o.dir, err)
		}
	}
	if log == nil {
		log = hclog.NewNullLogger()
	}
	store, err := cluster.NewStore(*o.dir)
	if err != nil {
		return nil, nil, err
	}
	pki, err := cluster.LoadOrCreatePKI(store.Dir())
	if err != nil {
		return nil, nil, err
	}
	prov, err := container.New(container.Config{SlotsDir: *o.slotsDir, PKI: pki, Logger: log})
	if err != nil {
		return nil, nil, err
	}
	return &deployment{dir: store.Dir(), mgr: cluster.NewManager(store, prov, pki, log), log: log}, prov, nil
}

type composeInitOpts struct {
	composeDirOpts
	azs  *string
	auth *string
}

func composeInitFlags(fs *flag.FlagSet) any {
	return &composeInitOpts{
		composeDirOpts: *composeDirFlags(fs).(*composeDirOpts),
		azs:            fs.String("azs", strings.Join(cluster.DefaultAZs, ","), "availability zones, comma-separated: each cluster gets one HSM in each"),
		auth:           fs.String("auth", "sigv4", "the endpoint's authentication: sigv4 or any"),
	}
}

// composeInitResult is what compose init reports.
type composeInitResult struct {
	Dir      string             `json:"dir"`
	Already  bool               `json:"already_initialized"`
	State    composeState       `json:"state"`
	Clusters []*cluster.Cluster `json:"clusters"`
}

func runComposeInit(ctx context.Context, e *env, o any, _ []string) error {
	opts := o.(*composeInitOpts)
	azs := strings.Split(*opts.azs, ",")
	if *opts.auth != "sigv4" && *opts.auth != "any" {
		return fmt.Errorf("%w: --auth must be sigv4 or any", errUsage)
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "hsmctl", Output: e.stderr, Level: hclog.Info})
	d, _, err := openComposeDeployment(&opts.composeDirOpts, true, log)
	if err != nil {
		return err
	}
	res := &composeInitResult{Dir: d.dir}
	st, err := readComposeState(d.dir)
	switch {
	case err == nil:
		res.Already, res.State = true, *st
	case errors.Is(err, fs.ErrNotExist):
		if res.State, err = composeBringUp(ctx, d, azs, *opts.slotsDir, *opts.auth); err != nil {
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), composeStopTimeout)
			defer cancel()
			d.mgr.StopAll(stopCtx)
			return err
		}
	default:
		return err
	}
	for _, id := range []string{res.State.ClusterID, res.State.FleetClusterID} {
		if _, err := d.mgr.Refresh(ctx, id); err != nil {
			return err
		}
		c, err := d.mgr.Cluster(id)
		if err != nil {
			return err
		}
		res.Clusters = append(res.Clusters, c)
	}
	return e.emit(res, func(w io.Writer) { printComposeInit(w, res) })
}

// composeStopTimeout bounds giving the containers back after a failed init.
const composeStopTimeout = 60 * time.Second

// composeBringUp creates both clusters, the credentials and the endpoint's
// configuration, and records them in compose.json, last.
func composeBringUp(ctx context.Context, d *deployment, azs []string, slotsDir, auth string) (composeState, error) {
	var st composeState
	customer, err := bringup.Cluster(ctx, d.mgr, bringup.Spec{AZs: azs, Dir: d.dir, CryptoUser: kmsuser, Logger: d.log})
	if err != nil {
		return st, fmt.Errorf("customer cluster: %w", err)
	}
	fleet, err := bringup.Cluster(ctx, d.mgr, bringup.Spec{AZs: azs, Dir: filepath.Join(d.dir, "kms"), CryptoUser: fleetUser,
		Tags: map[string]string{FleetRoleTag: FleetRole}, Logger: d.log})
	if err != nil {
		return st, fmt.Errorf("KMS fleet: %w", err)
	}
	st = composeState{
		ClusterID: customer.ClusterID, FleetClusterID: fleet.ClusterID, CustomerCA: customer.CustomerCAFile,
		AdminPasswordFile: customer.AdminPasswordFile, KmsuserPassword: customer.CryptoPasswordFile,
		KMSProxyConfig: filepath.Join(d.dir, kmsproxyConfigFile),
	}
	if _, _, st.CredentialsFile, err = d.writeCredentials(); err != nil {
		return st, err
	}
	conf, err := json.MarshalIndent(map[string]any{
		"addr": composeKMSAddr, "auth": auth, "region": Region,
		"deployment-dir": d.dir, "data-dir": filepath.Join(d.dir, "kms"), "credentials-file": st.CredentialsFile,
		"fleet-cluster-id": fleet.ClusterID, "fleet-password-file": fleet.CryptoPasswordFile,
		"provisioner": "container", "slots-dir": slotsDir,
	}, "", "  ")
	if err != nil {
		return st, err
	}
	if err := atomicfile.WriteFile(st.KMSProxyConfig, append(conf, '\n'), 0o600); err != nil {
		return st, err
	}
	if err := d.mgr.Store().Update(func(s *cluster.State) error {
		if s.Files == nil {
			s.Files = map[string]string{}
		}
		s.Files["customer_ca"], s.Files["admin_password"], s.Files["kmsuser_password"] = st.CustomerCA, st.AdminPasswordFile, st.KmsuserPassword
		return nil
	}); err != nil {
		return st, err
	}
	return st, writeComposeState(d.dir, st)
}

func readComposeState(dir string) (*composeState, error) {
	b, err := os.ReadFile(filepath.Join(dir, composeStateFile))
	if err != nil {
		return nil, err
	}
	var st composeState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%s is corrupt: %w", composeStateFile, err)
	}
	return &st, nil
}

func writeComposeState(dir string, st composeState) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, composeStateFile), append(b, '\n'), 0o600)
}

func printComposeInit(w io.Writer, res *composeInitResult) {
	if res.Already {
		fmt.Fprintf(w, "hsmsim containers: already initialized in %s\n", res.Dir)
	} else {
		fmt.Fprintf(w, "hsmsim containers initialized in %s\n", res.Dir)
	}
	for _, c := range res.Clusters {
		role := "the customer's cluster"
		if c.Tags[FleetRoleTag] == FleetRole {
			role = "the KMS fleet"
		}
		fmt.Fprintf(w, "\nCloudHSM cluster %s (%s), %s\n", c.ClusterID, c.State, role)
		printHsmContainers(w, c.Hsms)
	}
}

func printHsmContainers(w io.Writer, hsms []*cluster.HSM) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  HSM\tAZ\tCONTAINER\tSTATE")
	for _, h := range hsms {
		host, _, _ := net.SplitHostPort(h.Runtime.APIAddr)
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", h.HsmID, h.AvailabilityZone, host, h.State)
	}
	tw.Flush()
}

type composeConnectOpts struct {
	dir            *string
	endpoint       *string
	publicEndpoint *string
}

func composeConnectFlags(fs *flag.FlagSet) any {
	return &composeConnectOpts{
		dir:            fs.String("dir", DefaultDir, "deployment directory (the containers mount it at /deploy)"),
		endpoint:       fs.String("endpoint", "http://kmsproxy:4599", "the KMS endpoint, as this container reaches it"),
		publicEndpoint: fs.String("public-endpoint", "http://127.0.0.1:4599", "the KMS endpoint as the Docker host reaches it, for the lines printed"),
	}
}

// composeConnectResult is what compose connect reports.
type composeConnectResult struct {
	CustomKeyStoreID string `json:"custom_key_store_id"`
	ClusterID        string `json:"cluster_id"`
	Endpoint         string `json:"endpoint"`
}

func runComposeConnect(ctx context.Context, e *env, o any, _ []string) error {
	opts := o.(*composeConnectOpts)
	st, err := readComposeState(*opts.dir)
	if err != nil {
		return fmt.Errorf("run hsmctl compose init first: %w", err)
	}
	accessKey, secretKey, err := readProfile(st.CredentialsFile, credentialsProfile)
	if err != nil {
		return err
	}
	anchor, err := os.ReadFile(st.CustomerCA)
	if err != nil {
		return err
	}
	password, err := os.ReadFile(st.KmsuserPassword)
	if err != nil {
		return err
	}
	cl := kmsClient(*opts.endpoint, accessKey, secretKey)
	res := &composeConnectResult{ClusterID: st.ClusterID, Endpoint: *opts.publicEndpoint}
	// The HSMs came up moments ago on a machine that may be busy: KMS's
	// rules (two HSMs answering in two AZs) may not hold yet.
	deadline := time.Now().Add(composeConnectPatience)
	for {
		if res.CustomKeyStoreID, err = ensureKeyStore(ctx, cl, st, string(anchor), strings.TrimSpace(string(password))); err == nil {
			break
		}
		var invalid *kmstypes.CloudHsmClusterInvalidConfigurationException
		if !errors.As(err, &invalid) && !errors.Is(err, errStoreFailed) || time.Now().After(deadline) {
			return err
		}
		fmt.Fprintf(e.stderr, "hsmctl compose connect: %v; trying again\n", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
	st.CustomKeyStoreID, st.CustomKeyStoreName = res.CustomKeyStoreID, customKeyStoreName
	if err := writeComposeState(*opts.dir, *st); err != nil {
		return err
	}
	return e.emit(res, func(w io.Writer) {
		ep := "--endpoint-url " + res.Endpoint
		fmt.Fprintf(w, "Custom key store %s, CONNECTED to %s (KMS rotated kmsuser's password on connect)\n", res.CustomKeyStoreID, res.ClusterID)
		fmt.Fprintf(w, "\nTry (credentials: make compose-up copies them out of the endpoint's container):\n")
		fmt.Fprintf(w, "  KEY=$(aws %s kms create-key --origin AWS_CLOUDHSM --custom-key-store-id %s --query KeyMetadata.KeyId --output text)\n", ep, res.CustomKeyStoreID)
		fmt.Fprintf(w, "  aws %s kms encrypt --key-id $KEY --plaintext 'hello, HSM' --query CiphertextBlob --output text | base64 -d > /tmp/ct.bin\n", ep)
		fmt.Fprintf(w, "  aws %s kms decrypt --ciphertext-blob fileb:///tmp/ct.bin --query Plaintext --output text | base64 -d\n", ep)
	})
}

// composeConnectPatience bounds compose connect's retries.
const composeConnectPatience = 90 * time.Second

// errStoreFailed says the key store's connection FAILED: worth another try.
var errStoreFailed = errors.New("the custom key store's connection FAILED")

// ensureKeyStore finds the key store by name or creates it, and connects it
// unless it is CONNECTED. It returns the store's id.
func ensureKeyStore(ctx context.Context, cl *kms.Client, st *composeState, anchor, password string) (string, error) {
	var id string
	stores, err := cl.DescribeCustomKeyStores(ctx, &kms.DescribeCustomKeyStoresInput{CustomKeyStoreName: aws.String(customKeyStoreName)})
	var notFound *kmstypes.CustomKeyStoreNotFoundException
	switch {
	case err == nil && len(stores.CustomKeyStores) == 1:
		id = aws.ToString(stores.CustomKeyStores[0].CustomKeyStoreId)
	case err == nil || errors.As(err, &notFound):
		out, err := cl.CreateCustomKeyStore(ctx, &kms.CreateCustomKeyStoreInput{
			CustomKeyStoreName: aws.String(customKeyStoreName), CloudHsmClusterId: aws.String(st.ClusterID),
			TrustAnchorCertificate: aws.String(anchor), KeyStorePassword: aws.String(password),
		})
		if err != nil {
			return "", fmt.Errorf("create the custom key store: %w", err)
		}
		id = aws.ToString(out.CustomKeyStoreId)
	default:
		return "", fmt.Errorf("describe the custom key stores: %w", err)
	}
	stores, err = cl.DescribeCustomKeyStores(ctx, &kms.DescribeCustomKeyStoresInput{CustomKeyStoreId: aws.String(id)})
	if err != nil {
		return "", err
	}
	switch stores.CustomKeyStores[0].ConnectionState {
	case kmstypes.ConnectionStateTypeConnected:
		return id, nil
	case kmstypes.ConnectionStateTypeFailed:
		if _, err := cl.DisconnectCustomKeyStore(ctx, &kms.DisconnectCustomKeyStoreInput{CustomKeyStoreId: aws.String(id)}); err != nil {
			return "", fmt.Errorf("disconnect the FAILED custom key store: %w", err)
		}
	}
	if _, err := cl.ConnectCustomKeyStore(ctx, &kms.ConnectCustomKeyStoreInput{CustomKeyStoreId: aws.String(id)}); err != nil {
		return "", fmt.Errorf("connect the custom key store: %w", err)
	}
	if err := waitConnected(ctx, cl, id); err != nil {
		return "", fmt.Errorf("%w: %w", errStoreFailed, err)
	}
	return id, nil
}

// readProfile reads one profile's access key from an AWS shared
// credentials file. Errors never quote the file's values.
func readProfile(path, profile string) (accessKey, secretKey string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "[") {
			in = line == "["+profile+"]"
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !in || !ok {
			continue
		}
		switch strings.TrimSpace(key) {
		case "aws_access_key_id":
			accessKey = strings.TrimSpace(value)
		case "aws_secret_access_key":
			secretKey = strings.TrimSpace(value)
		}
	}
	if err := sc.Err(); err != nil {
		return "", "", err
	}
	if accessKey == "" || secretKey == "" {
		return "", "", fmt.Errorf("%s has no profile %s with both keys", path, profile)
	}
	return accessKey, secretKey, nil
}

// composeStatusReport is compose status's output.
type composeStatusReport struct {
	*statusReport
	Containers []container.Slot `json:"containers"`
}

func runComposeStatus(ctx context.Context, e *env, o any, _ []string) error {
	d, prov, err := openComposeDeployment(o.(*composeDirOpts), false, nil)
	if err != nil {
		return err
	}
	rep, err := d.status(ctx)
	if err != nil {
		return err
	}
	slots, err := prov.Slots()
	if err != nil {
		return err
	}
	out := &composeStatusReport{statusReport: rep, Containers: slots}
	return e.emit(out, func(w io.Writer) {
		printStatus(w, rep)
		fmt.Fprintln(w, "\nHSM containers:")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  CONTAINER\tAZ\tHSM")
		for _, s := range slots {
			id := s.HsmID
			if id == "" {
				id = "(unassigned)"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", s.Name, s.AZ, id)
		}
		tw.Flush()
	})
}

type composeFaultOpts struct {
	composeDirOpts
	target *string
}

// composeFaultFlags declares --az or --hsm (target), or neither.
func composeFaultFlags(target string) func(fs *flag.FlagSet) any {
	return func(fs *flag.FlagSet) any {
		o := &composeFaultOpts{composeDirOpts: *composeDirFlags(fs).(*composeDirOpts)}
		switch target {
		case "az":
			o.target = fs.String("az", "", "the availability zone (required)")
		case "hsm":
			o.target = fs.String("hsm", "", "the HSM's id (required)")
		}
		return o
	}
}

func runComposeFault(kind string) func(ctx context.Context, e *env, o any, _ []string) error {
	return func(ctx context.Context, e *env, o any, _ []string) error {
		opts := o.(*composeFaultOpts)
		if opts.target != nil && *opts.target == "" {
			return fmt.Errorf("%w: --az or --hsm is required", errUsage)
		}
		d, _, err := openComposeDeployment(&opts.composeDirOpts, false, nil)
		if err != nil {
			return err
		}
		switch kind {
		case "partition":
			err = d.mgr.PartitionAZ(ctx, *opts.target)
		case "isolate":
			err = d.mgr.Isolate(ctx, *opts.target)
		default:
			err = d.mgr.Heal(ctx)
		}
		if err != nil {
			return err
		}
		return e.emit(map[string]any{"done": kind}, func(w io.Writer) { fmt.Fprintf(w, "%s: done\n", kind) })
	}
}
