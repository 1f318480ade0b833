package chaos

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/hsmsim/hsmsim/cluster"
	"github.com/hsmsim/hsmsim/cluster/bringup"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

const (
	// kmsRegion is the endpoint's simulated region.
	kmsRegion = "us-east-1"
	// kmsUser is the crypto user KMS logs in as in the custom key store's
	// cluster (AWS's kmsuser).
	kmsUser = "kmsuser"
	// fleetUser is the KMS fleet's crypto user; cmd/kmsproxy logs in as it.
	fleetUser = "kms"
	// kmsProcess names the endpoint in the store's Processes, as hsmctl up
	// does, so that Manager.StopAll stops it.
	kmsProcess = "kmsproxy"
	// kmsMaxAttempts and kmsMaxBackoff are the SDK retryer's: enough
	// attempts to span an endpoint restart (a refused connection is
	// retried like a 5xx).
	kmsMaxAttempts = 10
	kmsMaxBackoff  = time.Second
	// kmsAttemptTimeout bounds one HTTP attempt: above the endpoint's own
	// bound on a request's HSM work (kms.DefaultHSMTimeout, 10 s).
	kmsAttemptTimeout = 15 * time.Second
	// connectTimeout bounds the wait for the custom key store to be
	// CONNECTED after the endpoint starts or restarts.
	connectTimeout = 60 * time.Second
)

// kmsEndpoint is the deployment's KMS endpoint: a kmsproxy process whose
// default key store is backed by a one-HSM KMS fleet, and one custom key
// store bound to the chaos cluster. The nemesis restarts it.
type kmsEndpoint struct {
	d      *deployment
	binary string
	args   []string
	// addr is the endpoint's address, the same across restarts; url its
	// http:// form.
	addr, url string
	// accessKey and secretKey are the credentials the endpoint accepts.
	accessKey, secretKey string
	// storeID is the custom key store bound to the chaos cluster.
	storeID string
	// fleetID is the KMS fleet's cluster.
	fleetID string

	mu sync.Mutex
	rt cluster.Runtime
}

// startKMS starts the KMS side of the deployment as hsmctl up does (see
// cmd/hsmctl's startKMS): a KMS fleet, credentials, the endpoint through
// the provisioner's StartProgram (recorded in the store's Processes), then
// a custom key store for the chaos cluster, connected with kmsuser's
// password. The fleet has one HSM: it backs only the endpoint's internal
// key (which seals kmsuser's password) and takes no faults.
func startKMS(ctx context.Context, d *deployment, home string) (*kmsEndpoint, error) {
	fleet, err := bringup.Cluster(ctx, d.mgr, bringup.Spec{AZs: cluster.DefaultAZs[:1], Dir: filepath.Join(home, "kms-fleet"),
		Tags: map[string]string{cluster.RoleTag: cluster.RoleKMSFleet}, CryptoUser: fleetUser, Logger: d.log})
	if err != nil {
		return nil, fmt.Errorf("KMS fleet: %w", err)
	}
	kmsuserPassword, err := createKmsuser(ctx, d)
	if err != nil {
		return nil, err
	}
	e := &kmsEndpoint{d: d, binary: kmsproxyPath, fleetID: fleet.ClusterID}
	credsFile, err := e.writeCredentials(home)
	if err != nil {
		return nil, err
	}
	if e.addr, err = freeLoopback(); err != nil {
		return nil, err
	}
	e.url = "http://" + e.addr
	e.args = []string{"--addr", e.addr, "--deployment-dir", home, "--data-dir", filepath.Join(home, "kms"),
		"--credentials-file", credsFile, "--region", kmsRegion,
		"--fleet-cluster-id", fleet.ClusterID, "--fleet-password-file", fleet.CryptoPasswordFile}
	if err := e.start(ctx); err != nil {
		return nil, err
	}
	cl := e.client(nil)
	out, err := cl.CreateCustomKeyStore(ctx, &kms.CreateCustomKeyStoreInput{
		CustomKeyStoreName: aws.String("chaos"), CloudHsmClusterId: aws.String(d.clusterID),
		TrustAnchorCertificate: aws.String(d.up.TrustAnchorPEM), KeyStorePassword: aws.String(kmsuserPassword),
	})
	if err != nil {
		return nil, fmt.Errorf("create the custom key store: %w", err)
	}
	e.storeID = aws.ToString(out.CustomKeyStoreId)
	if _, err := cl.ConnectCustomKeyStore(ctx, &kms.ConnectCustomKeyStoreInput{CustomKeyStoreId: out.CustomKeyStoreId}); err != nil {
		return nil, fmt.Errorf("connect the custom key store: %w", err)
	}
	if _, err := e.waitConnected(ctx, connectTimeout); err != nil {
		return nil, err
	}
	return e, nil
}

// createKmsuser creates the kmsuser crypto user in the chaos cluster, as
// the customer does before creating a custom key store, and returns its
// password (which the endpoint rotates when it connects).
func createKmsuser(ctx context.Context, d *deployment) (string, error) {
	password, err := bringup.RandomPassword()
	if err != nil {
		return "", err
	}
	admin, err := bringup.Login(ctx, d.mgr, d.clusterID, bringup.AdminUser, d.up.AdminPassword, hsmv1.Role_ROLE_ADMIN, d.log)
	if err != nil {
		return "", fmt.Errorf("log in as admin: %w", err)
	}
	defer admin.Close()
	if _, err := hsmv1.NewHsmServiceClient(admin).CreateUser(ctx, &hsmv1.CreateUserRequest{
		Username: kmsUser, Role: hsmv1.Role_ROLE_CRYPTO_USER, Password: password}); err != nil {
		return "", fmt.Errorf("create %s: %w", kmsUser, err)
	}
	return password, nil
}

// writeCredentials draws an access key and writes it as an AWS shared
// credentials file in dir, for the endpoint's --credentials-file.
func (e *kmsEndpoint) writeCredentials(dir string) (string, error) {
	const upper = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	const secretChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	pick := func(alphabet string, n int) string {
		b := make([]byte, n)
		rand.Read(b)
		for i := range b {
			b[i] = alphabet[int(b[i])%len(alphabet)]
		}
		return string(b)
	}
	e.accessKey, e.secretKey = "AKIA"+pick(upper, 16), pick(secretChars, 40)
	path := filepath.Join(dir, "credentials")
	body := fmt.Sprintf("[chaos]\naws_access_key_id = %s\naws_secret_access_key = %s\n", e.accessKey, e.secretKey)
	return path, os.WriteFile(path, []byte(body), 0o600)
}

// freeLoopback returns a loopback address whose port was free just now.
func freeLoopback() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// start runs the endpoint on its address and data directory, returns once
// it accepts connections and records its process in the store.
func (e *kmsEndpoint) start(ctx context.Context) error {
	rt, err := e.d.prov.StartProgram(ctx, e.binary, kmsProcess, e.args, e.addr)
	if err != nil {
		return fmt.Errorf("start the KMS endpoint: %w", err)
	}
	e.mu.Lock()
	e.rt = rt
	e.mu.Unlock()
	return e.d.mgr.Store().Update(func(st *cluster.State) error {
		if st.Processes == nil {
			st.Processes = map[string]cluster.Runtime{}
		}
		st.Processes[kmsProcess] = rt
		if st.Endpoints == nil {
			st.Endpoints = map[string]string{}
		}
		st.Endpoints["kms"] = e.url
		return nil
	})
}

// runtime returns the endpoint's current process.
func (e *kmsEndpoint) runtime() cluster.Runtime {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.rt
}

// running reports whether the endpoint's process is alive.
func (e *kmsEndpoint) running() bool { return e.d.prov.Running(e.runtime()) }

// restart kills the endpoint (SIGKILL, as a crash) and starts it again on
// the same address and data directory. It returns when the new process
// accepts connections; the custom key store reconnects in the background
// (waitConnected).
func (e *kmsEndpoint) restart(ctx context.Context) error {
	if err := e.d.prov.Kill(e.runtime()); err != nil {
		return fmt.Errorf("kill the KMS endpoint: %w", err)
	}
	return e.start(ctx)
}

// storeState returns the custom key store's connection state, "" when the
// endpoint does not answer.
func (e *kmsEndpoint) storeState(ctx context.Context, cl *kms.Client) kmstypes.ConnectionStateType {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	out, err := cl.DescribeCustomKeyStores(ctx, &kms.DescribeCustomKeyStoresInput{CustomKeyStoreId: aws.String(e.storeID)},
		func(o *kms.Options) { o.Retryer = aws.NopRetryer{} })
	if err != nil || len(out.CustomKeyStores) != 1 {
		return ""
	}
	return out.CustomKeyStores[0].ConnectionState
}

// errStoreFailed is returned when the custom key store turned FAILED.
var errStoreFailed = errors.New("the custom key store is FAILED")

// readiness is how long an endpoint took to come back.
type readiness struct {
	// connected is when DescribeCustomKeyStores said CONNECTED; serving
	// when a GenerateRandom in the store succeeded, which needs the
	// store's HSM client. After a restart the two differ: the store's
	// record stays CONNECTED while the endpoint reconnects in the
	// background.
	connected, serving time.Duration
}

// waitConnected waits until the endpoint answers, its custom key store is
// CONNECTED and the store serves crypto (GenerateRandom with its
// CustomKeyStoreId runs on its HSMs); it fails when the store turns
// FAILED or timeout passes.
func (e *kmsEndpoint) waitConnected(ctx context.Context, timeout time.Duration) (readiness, error) {
	start := time.Now()
	var r readiness
	cl := e.client(nil)
	for {
		if r.connected == 0 {
			switch e.storeState(ctx, cl) {
			case kmstypes.ConnectionStateTypeConnected:
				r.connected = time.Since(start)
			case kmstypes.ConnectionStateTypeFailed:
				return r, fmt.Errorf("%w; see %s", errStoreFailed, e.runtime().LogFile)
			}
		}
		if r.connected != 0 && e.serves(ctx, cl) {
			r.serving = time.Since(start)
			return r, nil
		}
		if time.Since(start) > timeout || ctx.Err() != nil {
			return r, fmt.Errorf("the custom key store does not serve (CONNECTED after %v) after %v; see %s",
				r.connected, timeout, e.runtime().LogFile)
		}
		sleep(ctx, 20*time.Millisecond)
	}
}

// serves reports whether a GenerateRandom in the custom key store works.
func (e *kmsEndpoint) serves(ctx context.Context, cl *kms.Client) bool {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := cl.GenerateRandom(ctx, &kms.GenerateRandomInput{NumberOfBytes: aws.Int32(16), CustomKeyStoreId: aws.String(e.storeID)},
		func(o *kms.Options) { o.Retryer = aws.NopRetryer{} })
	return err == nil
}

// client returns an AWS SDK KMS client for the endpoint, signing with its
// credentials, with the SDK's standard retryer (more attempts, shorter
// backoffs, no retry quota: an endpoint restart refuses connections for a
// while and must not drain it). rec, when set, records every HTTP attempt
// of a call whose context carries an attemptLog.
func (e *kmsEndpoint) client(rec *recorder) *kms.Client {
	hc := &http.Client{Timeout: kmsAttemptTimeout}
	return kms.New(kms.Options{
		Region:       kmsRegion,
		BaseEndpoint: aws.String(e.url),
		Credentials:  credentials.NewStaticCredentialsProvider(e.accessKey, e.secretKey, ""),
		HTTPClient:   &recordingClient{rec: rec, hc: hc},
		Retryer: retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts, o.MaxBackoff, o.RateLimiter = kmsMaxAttempts, kmsMaxBackoff, ratelimit.None
		}),
	})
}
