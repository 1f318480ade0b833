// Package cloudhsm is the CloudHSM v2 API (BaldrApiService, botocore model
// cloudhsmv2/2017-04-28) over the control plane, cluster.Manager.
//
// The API is AWS's, the work is the Manager's: CreateCluster records a
// cluster, CreateHsm starts an hsmd process, InitializeCluster hands the
// signed certificate to the HSM, and so on. AWS runs these asynchronously
// (CREATE_IN_PROGRESS, INITIALIZE_IN_PROGRESS, DELETE_IN_PROGRESS); here they
// complete before the response, so a response already shows the final state.
// Whatever the HSM side changes (activation, an HSM that stops answering) is
// read from the HSMs by refreshing a cluster before it is described.
//
// Local-deployment decisions:
//   - Subnets: a subnet id is any "subnet-" + 8..17 hex digits. A subnet the
//     deployment already knows (from any cluster's SubnetMapping, so the ids
//     DescribeClusters shows can be reused) keeps its AZ and VPC, as a real
//     subnet does; an unknown one takes the next free AZ of the region's
//     three (<region>a, b, c), in order. At most one subnet per AZ, so at most
//     three subnets, all of one VPC.
//   - The KMS fleet (the cluster tagged hsmsim:role=kms-fleet) belongs to KMS,
//     as KMS's own HSMs do in AWS: this API neither shows it, nor its
//     backups, nor resets it, and refuses the hsmsim: tag prefix.
//   - An HSM's certificate (Certificates.HsmCertificate) is the HSM's device
//     certificate, read from its TLS handshake while it still presents it
//     (before initialization) and remembered in memory. The deployment has
//     one hardware CA, which is both AwsHardwareCertificate and
//     ManufacturerHardwareCertificate.
//   - CreateHsm's IpAddress is accepted and ignored: HSMs listen on loopback.
//     NetworkType DUALSTACK, CopyBackupToRegion and resource policies are not
//     offered (one region, no IAM).
package cloudhsm

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hashicorp/go-hclog"

	"github.com/hsmsim/hsmsim/cluster"
	"github.com/hsmsim/hsmsim/kmsproxy/awsjson"
)

// CloudHSM's exception types.
const (
	errNotFound       = "CloudHsmResourceNotFoundException"
	errInvalidRequest = "CloudHsmInvalidRequestException"
	errInternal       = "CloudHsmInternalFailureException"
	errLimitExceeded  = "CloudHsmResourceLimitExceededException"
	errTag            = "CloudHsmTagException"
)

// mutationTimeout bounds an operation that starts or stops HSMs. It runs
// detached from the request: AWS's operations are asynchronous, so a client
// that gives up must not abort an HSM half way.
const mutationTimeout = 2 * time.Minute

// Service serves the CloudHSM v2 API over a cluster.Manager. It is safe for
// concurrent use.
type Service struct {
	mgr     *cluster.Manager
	region  string
	account string
	log     hclog.Logger

	// hsmCerts remembers HSM device certificates (PEM) by HSM id.
	mu       sync.Mutex
	hsmCerts map[string]string
}

// New returns the CloudHSM v2 service of region and account over mgr.
func New(mgr *cluster.Manager, region, account string, log hclog.Logger) *Service {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Service{mgr: mgr, region: region, account: account, log: log.Named("cloudhsm"), hsmCerts: map[string]string{}}
}

// Mux returns the service's operations, routed by BaldrApiService.<Op>.
func (s *Service) Mux() *awsjson.Mux {
	m := awsjson.NewMux(awsjson.CloudHSM)
	for op, h := range map[string]awsjson.Handler{
		"CreateCluster":          s.createCluster,
		"DescribeClusters":       s.describeClusters,
		"InitializeCluster":      s.initializeCluster,
		"ModifyCluster":          s.modifyCluster,
		"DeleteCluster":          s.deleteCluster,
		"CreateHsm":              s.createHsm,
		"DeleteHsm":              s.deleteHsm,
		"DescribeBackups":        s.describeBackups,
		"DeleteBackup":           s.deleteBackup,
		"RestoreBackup":          s.restoreBackup,
		"ModifyBackupAttributes": s.modifyBackupAttributes,
		"TagResource":            s.tagResource,
		"UntagResource":          s.untagResource,
		"ListTags":               s.listTags,
	} {
		m.Handle(op, s.mapErrors(h))
	}
	return m
}

// Reset stops every HSM of every cluster and forgets the clusters and their
// backups, except the KMS fleet (tagged hsmsim:role=kms-fleet) and its
// backups, which belong to the KMS service and live through a reset.
func (s *Service) Reset(ctx context.Context) error {
	ids, err := s.mgr.RemoveClusters(ctx, (*cluster.Cluster).IsKMSFleet)
	if err != nil {
		return err
	}
	s.mu.Lock()
	clear(s.hsmCerts)
	s.mu.Unlock()
	s.log.Info("reset", "clusters_removed", len(ids))
	return nil
}

// mapErrors turns the control plane's errors into CloudHSM's exceptions.
func (s *Service) mapErrors(h awsjson.Handler) awsjson.Handler {
	return func(ctx context.Context, r *awsjson.Request) (any, error) {
		out, err := h(ctx, r)
		if err != nil {
			return nil, s.awsError(r.Operation, err)
		}
		return out, nil
	}
}

// awsError maps err to an *awsjson.Error. The control plane's messages say
// which resource and which rule; an HSM's failure is logged and reported
// without its details, which could name what the HSM holds.
func (s *Service) awsError(op string, err error) error {
	var e *awsjson.Error
	switch {
	case errors.As(err, &e):
		return e
	case errors.Is(err, cluster.ErrNotFound):
		return awsjson.Errorf(errNotFound, http.StatusBadRequest, "%s", sentence(err.Error()))
	case errors.Is(err, cluster.ErrInvalidRequest):
		return awsjson.Errorf(errInvalidRequest, http.StatusBadRequest, "%s", detail(err, cluster.ErrInvalidRequest))
	case errors.Is(err, cluster.ErrTagLimit):
		return awsjson.Errorf(errLimitExceeded, http.StatusBadRequest, "%s", detail(err, cluster.ErrTagLimit))
	case errors.Is(err, cluster.ErrHSM):
		s.log.Error("hsm failure", "operation", op, "error", err)
		return awsjson.Errorf(errInternal, http.StatusInternalServerError, "An HSM of the cluster failed the request. Try again.")
	}
	s.log.Error("internal failure", "operation", op, "error", err)
	return err
}

// detail strips the sentinel's text from the front of err's message.
func detail(err, sentinel error) string {
	return sentence(strings.TrimPrefix(err.Error(), sentinel.Error()+": "))
}

// sentence capitalizes msg and ends it with a period.
func sentence(msg string) string {
	r, n := utf8.DecodeRuneInString(msg)
	msg = string(unicode.ToUpper(r)) + msg[n:]
	if !strings.HasSuffix(msg, ".") {
		msg += "."
	}
	return msg
}

// detached returns a context for an operation that must finish even when
// the caller leaves.
func detached(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), mutationTimeout)
}

// visibleCluster returns a cluster that this API shows: not deleted, not
// the KMS fleet.
func (s *Service) visibleCluster(id string) (*cluster.Cluster, error) {
	c, err := s.mgr.Cluster(id)
	if err != nil {
		return nil, err
	}
	if c.IsKMSFleet() {
		return nil, notFound("cluster", id)
	}
	return c, nil
}

// visibleBackup returns a backup that this API shows: not deleted, not of
// the KMS fleet. st is the state it was read from.
func (s *Service) visibleBackup(id string) (*cluster.Backup, *cluster.State, error) {
	st, err := s.mgr.Store().Load()
	if err != nil {
		return nil, nil, err
	}
	b := st.Backup(id)
	if b == nil || b.State == cluster.BackupDeleted || fleetBackup(st, b) {
		return nil, nil, notFound("backup", id)
	}
	return b, st, nil
}

func fleetBackup(st *cluster.State, b *cluster.Backup) bool {
	c := st.Cluster(b.ClusterID)
	return c != nil && c.IsKMSFleet()
}

func notFound(kind, id string) error {
	return awsjson.Errorf(errNotFound, http.StatusBadRequest, "Resource not found: %s %s.", kind, id)
}

func invalidRequest(format string, args ...any) error {
	return awsjson.Errorf(errInvalidRequest, http.StatusBadRequest, format, args...)
}
