package client_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hsmsim/hsmsim/cluster/client"
	"github.com/hsmsim/hsmsim/internal/testpki"
	"github.com/hsmsim/hsmsim/node/nodetest"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

const (
	user     = "alice"
	password = "crypto-password-1"
	gcm      = hsmv1.EncryptionMechanism_ENCRYPTION_MECHANISM_AES_GCM
	// opTimeout bounds one call of a test: long enough for an election and
	// a restart under -race on two cores, short enough to fail a hang.
	opTimeout = 20 * time.Second
)

// testWriter routes logs to t.Log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// newCluster starts a 3-HSM cluster with the crypto user alice, known to
// every replica.
func newCluster(t *testing.T) *nodetest.Cluster {
	t.Helper()
	c := nodetest.New(t, 3)
	c.CreateCryptoUser(c.Leader().Index, user, password)
	c.WaitConverged()
	return c
}

// config returns a Client configuration for every HSM of c.
func config(t testing.TB, c *nodetest.Cluster, username, pw string) client.Config {
	cfg := client.Config{
		TrustAnchor: c.CustomerCA.Cert, CertificateID: c.ClusterID,
		Username: username, Password: pw, Role: hsmv1.Role_ROLE_CRYPTO_USER,
		Logger: hclog.New(&hclog.LoggerOptions{Name: "test", Level: hclog.Debug, Output: testWriter{t}}),
	}
	for i, n := range c.Nodes {
		cfg.Endpoints = append(cfg.Endpoints, client.Endpoint{ID: n.ID(), AZ: nodetest.AZs[i%len(nodetest.AZs)], Addr: n.APIAddr()})
	}
	return cfg
}

// mustClient returns a Client logged in as alice, closed at the end of the test.
func mustClient(t *testing.T, c *nodetest.Cluster) (*client.Client, hsmv1.HsmServiceClient) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	cl, err := client.New(ctx, config(t, c, user, password))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, cl.Close()) })
	return cl, hsmv1.NewHsmServiceClient(cl)
}

func opContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	t.Cleanup(cancel)
	return ctx
}

func aes256(label string) *hsmv1.GenerateSymmetricKeyRequest {
	return &hsmv1.GenerateSymmetricKeyRequest{Type: hsmv1.KeyType_KEY_TYPE_AES, SizeBits: 256, Label: label,
		Usage: &hsmv1.KeyUsage{Encrypt: true, Decrypt: true}}
}

// createKey creates an AES key through api and returns its handle.
func createKey(t testing.TB, api hsmv1.HsmServiceClient, label string) uint64 {
	t.Helper()
	resp, err := api.GenerateSymmetricKey(opContext(t), aes256(label))
	require.NoError(t, err)
	return resp.GetKey().GetHandle()
}

// roundTrip encrypts and decrypts pt with key and checks the result.
func roundTrip(ctx context.Context, api hsmv1.HsmServiceClient, key uint64, pt []byte) error {
	enc, err := api.Encrypt(ctx, &hsmv1.EncryptRequest{Handle: key, Mechanism: gcm, Plaintext: pt, Aad: []byte("aad")})
	if err != nil {
		return fmt.Errorf("encrypt: %w", err)
	}
	dec, err := api.Decrypt(ctx, &hsmv1.DecryptRequest{Handle: key, Mechanism: gcm, Ciphertext: enc.GetCiphertext(), Aad: []byte("aad")})
	if err != nil {
		return fmt.Errorf("decrypt: %w", err)
	}
	if !bytes.Equal(dec.GetPlaintext(), pt) {
		return fmt.Errorf("decrypt returned %q, want %q", dec.GetPlaintext(), pt)
	}
	return nil
}

func requireAllHealthy(t *testing.T, cl *client.Client) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, h := range cl.Health() {
			if !h.Healthy {
				return false
			}
		}
		return true
	}, 10*time.Second, 10*time.Millisecond, "health: %+v", cl.Health())
}

// TestSpreading checks that concurrent calls are spread over every HSM.
func TestSpreading(t *testing.T) {
	c := newCluster(t)
	cl, api := mustClient(t, c)
	requireAllHealthy(t, cl)
	key := createKey(t, api, "spread")

	const calls, workers = 300, 8
	jobs := make(chan int, calls)
	for i := range calls {
		jobs <- i
	}
	close(jobs)
	var failures atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range jobs {
				_, err := api.Encrypt(opContext(t), &hsmv1.EncryptRequest{Handle: key, Mechanism: gcm, Plaintext: []byte(fmt.Sprint(i))})
				if err != nil {
					failures.Add(1)
					t.Log("encrypt:", err)
				}
			}
		})
	}
	wg.Wait()
	require.Zero(t, failures.Load())
	var total uint64
	for _, h := range cl.Health() {
		require.True(t, h.Healthy, "%+v", h)
		require.Positive(t, h.Served, "HSM %s served nothing: %+v", h.ID, cl.Health())
		require.Zero(t, h.Outstanding, "%+v", h)
		total += h.Served
	}
	require.Equal(t, uint64(calls+1), total, "one key creation and the encryptions")
}

// TestReadYourWrites creates keys through the Client and uses each at once:
// consecutive calls land on different HSMs, which must wait for the write.
func TestReadYourWrites(t *testing.T) {
	c := newCluster(t)
	cl, api := mustClient(t, c)
	requireAllHealthy(t, cl)
	for i := range 50 {
		before := cl.ObservedIndex()
		key := createKey(t, api, fmt.Sprint("ryw-", i))
		require.Greater(t, cl.ObservedIndex(), before, "a write raises the observed index")
		_, err := api.Encrypt(opContext(t), &hsmv1.EncryptRequest{Handle: key, Mechanism: gcm, Plaintext: []byte("x")})
		require.NoError(t, err, "key %d, iteration %d", key, i)
	}
	for _, h := range cl.Health() {
		require.Positive(t, h.Served, "calls must land on every HSM: %+v", cl.Health())
	}
}

// load runs encrypt/decrypt round trips and key creations through api from
// several goroutines until stopped, counting operations and failures and
// keeping the labels of the keys whose creation was acknowledged.
type load struct {
	ops, writes, failures atomic.Int64
	mu                    sync.Mutex
	errs                  []error
	acked                 []string
	stop                  chan struct{}
	wg                    sync.WaitGroup
}

// startLoad starts workers; the keys they create are labeled prefix-w-i.
func startLoad(t *testing.T, api hsmv1.HsmServiceClient, key uint64, workers int, prefix string) *load {
	l := &load{stop: make(chan struct{})}
	for w := range workers {
		l.wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
				var err error
				if i%4 == 3 {
					label := fmt.Sprintf("%s-%d-%d", prefix, w, i)
					_, err = api.GenerateSymmetricKey(ctx, aes256(label))
					if err == nil {
						l.writes.Add(1)
						l.mu.Lock()
						l.acked = append(l.acked, label)
						l.mu.Unlock()
					}
				} else {
					err = roundTrip(ctx, api, key, []byte(fmt.Sprintf("plaintext %d %d", w, i)))
				}
				cancel()
				l.ops.Add(1)
				if err != nil {
					l.failures.Add(1)
					l.mu.Lock()
					l.errs = append(l.errs, err)
					l.mu.Unlock()
				}
			}
		})
	}
	t.Cleanup(l.halt)
	return l
}

// halt stops the load and waits for it; it may be called twice.
func (l *load) halt() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

// waitFor waits until the load has done n more operations and w more writes.
func (l *load) waitFor(t *testing.T, n, w int64) {
	t.Helper()
	ops, writes := l.ops.Load()+n, l.writes.Load()+w
	require.Eventually(t, func() bool { return l.ops.Load() >= ops && l.writes.Load() >= writes },
		30*time.Second, 10*time.Millisecond, "load stalled at %d operations, %d failures", l.ops.Load(), l.failures.Load())
}

// requireKeysExactly checks that the keys the client's user sees are
// exactly the labels given, each once: every acknowledged creation made
// one key, retried or not, and nothing else made any.
func requireKeysExactly(t *testing.T, api hsmv1.HsmServiceClient, labels []string) {
	t.Helper()
	resp, err := api.FindKeys(opContext(t), &hsmv1.FindKeysRequest{})
	require.NoError(t, err)
	got := make(map[string]int)
	for _, k := range resp.GetKeys() {
		got[k.GetLabel()]++
	}
	want := make(map[string]int)
	for _, l := range labels {
		want[l]++
	}
	require.Equal(t, want, got, "keys by label")
	require.Len(t, resp.GetKeys(), len(labels))
}

// TestFailover kills an HSM under load: no operation fails, writes
// included, and the HSM is used again once it is back. Every acknowledged
// key creation made exactly one key: writes retried after an unknown
// outcome were applied once.
func TestFailover(t *testing.T) {
	c := newCluster(t)
	cl, api := mustClient(t, c)
	requireAllHealthy(t, cl)
	key := createKey(t, api, "failover")
	labels := []string{"failover"}

	tests := []struct {
		name string
		// victim picks the HSM to stop.
		victim func() int
		// underLoad says the HSM is stopped while the load runs; otherwise
		// it is stopped and restarted between calls, so that the Client
		// finds its session gone (Unauthenticated) rather than the
		// connection refused.
		underLoad bool
	}{
		{name: "follower", victim: func() int { return c.Followers()[0].Index }, underLoad: true},
		{name: "leader", victim: func() int { return c.Leader().Index }, underLoad: true},
		{name: "restart between calls", victim: func() int { return c.Followers()[1].Index }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			victim := tc.victim()
			if tc.underLoad {
				l := startLoad(t, api, key, 8, "load-"+tc.name)
				l.waitFor(t, 50, 5)
				c.Stop(victim)
				l.waitFor(t, 200, 20)
				l.halt()
				require.Zero(t, l.failures.Load(), "failed operations: %v", l.errs)
				require.False(t, cl.Health()[victim].Healthy, "the stopped HSM must be marked unhealthy: %+v", cl.Health()[victim])
				labels = append(labels, l.acked...)
				requireKeysExactly(t, api, labels)
				c.Restart(victim)
			} else {
				c.Stop(victim)
				c.Restart(victim)
				for i := range 12 {
					require.NoError(t, roundTrip(opContext(t), api, key, []byte("after restart")))
					label := fmt.Sprint("after-restart-", i)
					_, err := api.GenerateSymmetricKey(opContext(t), aes256(label))
					require.NoError(t, err)
					labels = append(labels, label)
				}
			}
			require.Eventually(t, func() bool { return cl.Health()[victim].Healthy }, 10*time.Second, 10*time.Millisecond,
				"the restarted HSM must be healthy again: %+v", cl.Health()[victim])
			served := cl.Health()[victim].Served
			require.Eventually(t, func() bool {
				for range 6 {
					if err := roundTrip(opContext(t), api, key, []byte("spread again")); err != nil {
						t.Log(err)
						return false
					}
				}
				return cl.Health()[victim].Served > served
			}, 10*time.Second, 10*time.Millisecond, "the restarted HSM must serve again: %+v", cl.Health())
		})
	}
	requireKeysExactly(t, api, labels)
}

// pausableProxy forwards TCP connections to an HSM and can stop forwarding
// either direction while keeping every connection open, new ones included.
// Both directions held is what a client sees of a SIGSTOPped process,
// whose kernel still accepts and buffers; responses alone held is an HSM
// that acts on requests but whose answers are lost.
type pausableProxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu sync.Mutex
	// held[direction] is nil while that direction flows, else a channel
	// closed when it flows again.
	held   [2]chan struct{}
	conns  []net.Conn
	closed bool
}

// Directions of a proxied connection.
const (
	requests  = 0 // client to HSM
	responses = 1 // HSM to client
)

func newPausableProxy(t *testing.T, target string) *pausableProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &pausableProxy{ln: ln, target: target}
	p.wg.Go(p.serve)
	t.Cleanup(p.close)
	return p
}

func (p *pausableProxy) addr() string { return p.ln.Addr().String() }

func (p *pausableProxy) serve() {
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			in.Close()
			continue
		}
		if !p.track(in, out) {
			return
		}
		p.wg.Go(func() { p.pipe(out, in, requests) })
		p.wg.Go(func() { p.pipe(in, out, responses) })
	}
}

// track remembers conns for close; false once the proxy is closed.
func (p *pausableProxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		for _, c := range conns {
			c.Close()
		}
		return false
	}
	p.conns = append(p.conns, conns...)
	return true
}

// pipe copies src to dst, holding each chunk while direction is held.
func (p *pausableProxy) pipe(dst, src net.Conn, direction int) {
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			held := p.held[direction]
			p.mu.Unlock()
			if held != nil {
				<-held
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// hold stops forwarding the given directions.
func (p *pausableProxy) hold(directions ...int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, d := range directions {
		if p.held[d] == nil {
			p.held[d] = make(chan struct{})
		}
	}
}

// release forwards both directions again, the held bytes first.
func (p *pausableProxy) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for d, held := range p.held {
		if held != nil {
			close(held)
			p.held[d] = nil
		}
	}
}

// drop closes the connections made so far; new ones are made as before.
func (p *pausableProxy) drop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *pausableProxy) close() {
	p.ln.Close()
	p.release()
	p.mu.Lock()
	p.closed = true
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// blackHole returns the address of a TCP listener that accepts connections
// and never answers: not even a TLS handshake.
func blackHole(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var mu sync.Mutex
	var conns []net.Conn
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// unusedAddr returns a loopback address nothing listens on.
func unusedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// TestRefusals covers what New and Invoke must refuse.
func TestRefusals(t *testing.T) {
	c := newCluster(t)
	// bob and carol get wrong passwords, three at most each: fewer than the
	// five that lock a user, so each case sees a plain wrong password.
	c.CreateCryptoUser(c.Leader().Index, "bob", password)
	c.CreateCryptoUser(c.Leader().Index, "carol", password)
	c.WaitConverged()

	t.Run("New", func(t *testing.T) {
		other := testpki.NewCA(t, "another CA")
		tests := []struct {
			name   string
			mutate func(*client.Config)
			code   codes.Code
		}{
			{"wrong password", func(cfg *client.Config) { cfg.Username, cfg.Password = "bob", "wrong-password-1" }, codes.PermissionDenied},
			{"unknown user", func(cfg *client.Config) { cfg.Username = "nobody" }, codes.PermissionDenied},
			{"wrong role", func(cfg *client.Config) { cfg.Role = hsmv1.Role_ROLE_ADMIN }, codes.PermissionDenied},
			{"wrong certificate id", func(cfg *client.Config) { cfg.CertificateID = "cluster-other" }, codes.Unavailable},
			{"other trust anchor", func(cfg *client.Config) { cfg.TrustAnchor = other.Cert }, codes.Unavailable},
			{"nothing listening", func(cfg *client.Config) {
				for i := range cfg.Endpoints {
					cfg.Endpoints[i].Addr = unusedAddr(t)
				}
			}, codes.Unavailable},
			{"wrong password, one HSM unreachable", func(cfg *client.Config) {
				cfg.Username, cfg.Password = "carol", "wrong-password-1"
				cfg.Endpoints[0].Addr = unusedAddr(t)
			}, codes.PermissionDenied},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				cfg := config(t, c, user, password)
				tc.mutate(&cfg)
				cl, err := client.New(opContext(t), cfg)
				require.Nil(t, cl)
				require.Equal(t, tc.code, status.Code(err), "%v", err)
			})
		}
	})

	t.Run("Invoke", func(t *testing.T) {
		cl, api := mustClient(t, c)
		_, err := api.Login(opContext(t), &hsmv1.LoginRequest{Username: user, Password: password, Role: hsmv1.Role_ROLE_CRYPTO_USER})
		require.Equal(t, codes.FailedPrecondition, status.Code(err), "%v", err)
		_, err = api.Logout(opContext(t), &hsmv1.LogoutRequest{})
		require.Equal(t, codes.FailedPrecondition, status.Code(err), "%v", err)
		_, err = cl.NewStream(opContext(t), &grpc.StreamDesc{}, "/hsm.v1.HsmService/Encrypt")
		require.Equal(t, codes.Unimplemented, status.Code(err), "%v", err)

		// An answer comes back as it is.
		_, err = api.Encrypt(opContext(t), &hsmv1.EncryptRequest{Handle: 1 << 40, Mechanism: gcm, Plaintext: []byte("x")})
		require.Equal(t, codes.NotFound, status.Code(err), "%v", err)

		// The session still works; after Close, calls are refused.
		_, err = api.GenerateRandom(opContext(t), &hsmv1.GenerateRandomRequest{Length: 16})
		require.NoError(t, err)
		require.NoError(t, cl.Close())
		_, err = api.GenerateRandom(opContext(t), &hsmv1.GenerateRandomRequest{Length: 16})
		require.Equal(t, codes.FailedPrecondition, status.Code(err), "%v", err)
	})
}

// TestValidate checks each configuration error.
func TestValidate(t *testing.T) {
	ca := testpki.NewCA(t, "customer CA")
	leaf := ca.Issue(t, "cluster-x", false)
	valid := func() client.Config {
		return client.Config{
			Endpoints:   []client.Endpoint{{ID: "hsm-0", Addr: "127.0.0.1:1"}, {ID: "hsm-1", Addr: "127.0.0.1:2"}},
			TrustAnchor: ca.Cert, CertificateID: "cluster-x", Username: user, Password: password, Role: hsmv1.Role_ROLE_CRYPTO_USER,
		}
	}
	tests := []struct {
		name   string
		mutate func(*client.Config)
		want   string // "" for valid
	}{
		{"valid", func(*client.Config) {}, ""},
		{"no endpoints", func(c *client.Config) { c.Endpoints = nil }, "at least one endpoint"},
		{"endpoint without id", func(c *client.Config) { c.Endpoints[0].ID = "" }, "ID is required"},
		{"endpoint without addr", func(c *client.Config) { c.Endpoints[1].Addr = "" }, "Addr is required"},
		{"duplicate endpoint", func(c *client.Config) { c.Endpoints[1].ID = "hsm-0" }, "listed twice"},
		{"no trust anchor", func(c *client.Config) { c.TrustAnchor = nil }, "TrustAnchor is required"},
		{"trust anchor not a CA", func(c *client.Config) { c.TrustAnchor = leaf.Leaf }, "not a CA"},
		{"no certificate id", func(c *client.Config) { c.CertificateID = "" }, "CertificateID"},
		{"no username", func(c *client.Config) { c.Username = "" }, "Username"},
		{"no password", func(c *client.Config) { c.Password = "" }, "Password"},
		{"no role", func(c *client.Config) { c.Role = hsmv1.Role_ROLE_UNSPECIFIED }, "Role"},
		{"unknown role", func(c *client.Config) { c.Role = 99 }, "Role"},
		{"negative retry interval", func(c *client.Config) { c.RetryInterval = -time.Second }, "RetryInterval"},
		{"negative attempts", func(c *client.Config) { c.MaxAttempts = -1 }, "MaxAttempts"},
		{"negative health interval", func(c *client.Config) { c.HealthInterval = -time.Second }, "HealthInterval"},
		{"negative attempt timeout", func(c *client.Config) { c.AttemptTimeout = -time.Second }, "AttemptTimeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := valid()
			tc.mutate(&cfg)
			err := cfg.Validate()
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.want)
			cl, err := client.New(context.Background(), cfg)
			require.Nil(t, cl)
			require.ErrorContains(t, err, tc.want, "New validates")
		})
	}
}

// TestAttemptTimeout checks that an HSM that accepts connections but never
// answers costs a call one AttemptTimeout, not the caller's deadline. One
// endpoint is a black hole from the start (no TLS handshake ever); another
// HSM, behind a proxy, is paused (nothing forwarded) or loses its answers
// (requests forwarded and acted on, responses held) under load. Every call
// runs under one shared 30 s deadline: without the per-attempt timeout the
// first call to reach a silent HSM would hang until it passed. Writes whose
// answers were lost were applied there and retried elsewhere: each must
// have made exactly one key.
func TestAttemptTimeout(t *testing.T) {
	c := newCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	cfg := config(t, c, user, password)
	cfg.AttemptTimeout = 300 * time.Millisecond
	proxy := newPausableProxy(t, cfg.Endpoints[0].Addr)
	cfg.Endpoints[0].Addr = proxy.addr()
	cfg.Endpoints = append(cfg.Endpoints, client.Endpoint{ID: "black-hole", AZ: "az-x", Addr: blackHole(t)})
	proxied, hole := 0, len(cfg.Endpoints)-1

	cl, err := client.New(ctx, cfg)
	require.NoError(t, err, "New does not wait for the black hole")
	t.Cleanup(func() { require.NoError(t, cl.Close()) })
	api := hsmv1.NewHsmServiceClient(cl)
	healthy := func() bool {
		h := cl.Health()
		return h[0].Healthy && h[1].Healthy && h[2].Healthy
	}
	require.Eventually(t, healthy, 10*time.Second, 10*time.Millisecond, "health: %+v", cl.Health())
	require.False(t, cl.Health()[hole].Healthy)

	resp, err := api.GenerateSymmetricKey(ctx, aes256("attempt-timeout"))
	require.NoError(t, err)
	key := resp.GetKey().GetHandle()
	labels := []string{"attempt-timeout"}

	tests := []struct {
		name string
		hold []int
	}{
		{"paused", []int{requests, responses}},
		{"answers lost", []int{responses}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Eventually(t, healthy, 15*time.Second, 10*time.Millisecond, "health: %+v", cl.Health())
			proxy.hold(tc.hold...)
			// Writes first: the proxied HSM is healthy when the load
			// starts, so spreading sends it some of them.
			var wg sync.WaitGroup
			var mu sync.Mutex
			var errs []error
			for w := range 4 {
				wg.Go(func() {
					for i := range 6 {
						label := fmt.Sprintf("%s-%d-%d", tc.name, w, i)
						_, err := api.GenerateSymmetricKey(ctx, aes256(label))
						if err == nil {
							mu.Lock()
							labels = append(labels, label)
							mu.Unlock()
							err = roundTrip(ctx, api, key, []byte(label))
						}
						if err != nil {
							mu.Lock()
							errs = append(errs, err)
							mu.Unlock()
						}
					}
				})
			}
			wg.Wait()
			require.Empty(t, errs)
			require.NoError(t, ctx.Err(), "the calls finished before the deadline")
			require.False(t, cl.Health()[proxied].Healthy, "the silent HSM is marked unhealthy: %+v", cl.Health()[proxied])
			require.False(t, cl.Health()[hole].Healthy)

			// Released, the HSM is used again.
			proxy.release()
			require.Eventually(t, func() bool { return cl.Health()[proxied].Healthy }, 15*time.Second, 10*time.Millisecond,
				"the HSM must be healthy again: %+v", cl.Health()[proxied])
			served := cl.Health()[proxied].Served
			require.Eventually(t, func() bool {
				for range 6 {
					if err := roundTrip(ctx, api, key, []byte("again")); err != nil {
						t.Log(err)
						return false
					}
				}
				return cl.Health()[proxied].Served > served
			}, 10*time.Second, 10*time.Millisecond, "the HSM must serve again: %+v", cl.Health())
			c.WaitConverged()
			requireKeysExactly(t, api, labels)
		})
	}
}

// TestLoginCarriesThePasswordChange checks that the Client's logins carry
// the index of its last write to users: after the Client changes its own
// password, a re-login on an HSM whose replica has not applied the change
// yet (cut off from Raft) waits for it there and reports the replica
// behind, rather than trying the new password against the old one (a
// failed login, towards the user's lock); once the HSM catches up, the
// login succeeds.
func TestLoginCarriesThePasswordChange(t *testing.T) {
	const frank, newPassword = "frank", "frank-password-2"
	c := nodetest.New(t, 3)
	c.CreateCryptoUser(c.Leader().Index, frank, password)
	c.WaitConverged()
	f := c.Followers()[0]
	cfg := config(t, c, frank, password)
	cfg.HealthInterval = 50 * time.Millisecond
	proxy := newPausableProxy(t, cfg.Endpoints[f.Index].Addr)
	cfg.Endpoints[f.Index].Addr = proxy.addr()
	cl, err := client.New(opContext(t), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, cl.Close()) })
	requireAllHealthy(t, cl)
	api := hsmv1.NewHsmServiceClient(cl)
	key := createKey(t, api, "login-index")
	c.WaitConverged()

	c.CutOff(f.Index)
	_, err = api.ChangePassword(opContext(t), &hsmv1.ChangePasswordRequest{Username: frank, NewPassword: newPassword})
	require.NoError(t, err)

	proxy.drop() // the HSM ends the Client's session there
	require.Eventually(t, func() bool {
		require.NoError(t, roundTrip(opContext(t), api, key, []byte("on the others")))
		h := cl.Health()[f.Index]
		require.NotContains(t, h.LastError, "permission denied", "the new password was tried against the old")
		return strings.Contains(h.LastError, "replica behind")
	}, 20*time.Second, 20*time.Millisecond, "the re-login waits for the change: %+v", cl.Health()[f.Index])

	require.NoError(t, c.Heal())
	require.Eventually(t, func() bool { return cl.Health()[f.Index].Healthy }, 20*time.Second, 20*time.Millisecond,
		"logged in again once the HSM caught up: %+v", cl.Health()[f.Index])
}
