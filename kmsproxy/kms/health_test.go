package kms_test

import (
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	kmssdk "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"
)

// requireCreateKeyRefused waits at most within for CreateKey in store id
// to be refused for want of two answering HSMs in different AZs.
func requireCreateKeyRefused(t *testing.T, e *env, id string, within time.Duration) {
	t.Helper()
	start := time.Now()
	var last error
	for time.Since(start) < within {
		_, last = e.kms.CreateKey(ctx, &kmssdk.CreateKeyInput{Origin: types.OriginTypeAwsCloudhsm, CustomKeyStoreId: aws.String(id)})
		var ae smithy.APIError
		if errors.As(last, &ae) && ae.ErrorCode() == "CloudHsmClusterInvalidConfigurationException" {
			requireAPIError(t, last, "CloudHsmClusterInvalidConfigurationException", "1 active HSMs answer")
			t.Logf("CreateKey refused %v after the HSM stopped", time.Since(start))
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("CreateKey not refused within %v: last result %v", within, last)
}

// requireCreateKeyWorks waits at most within for CreateKey in store id to
// succeed.
func requireCreateKeyWorks(t *testing.T, e *env, id string, within time.Duration) {
	t.Helper()
	start := time.Now()
	var last error
	for time.Since(start) < within {
		if _, last = e.kms.CreateKey(ctx, &kmssdk.CreateKeyInput{Origin: types.OriginTypeAwsCloudhsm, CustomKeyStoreId: aws.String(id)}); last == nil {
			t.Logf("CreateKey works %v after the HSMs converged", time.Since(start))
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("CreateKey does not work within %v: %v", within, last)
}

// TestCreateKeyHealthView checks CreateKey's HSM rule on the endpoint's
// health view: with one of two HSMs stopped CreateKey is refused within
// about a second, and works again shortly after the HSM is back; many
// CreateKeys in a row do not pay a probe each.
func TestCreateKeyHealthView(t *testing.T) {
	e := newEnv(t)
	const pw = "kmsuser-pass-1"
	cust := newCustomer(t, 2, pw)
	custID := e.addCluster(cust, nil)
	storeID, err := e.createStore("health", custID, string(cust.CustomerCA.CertPEM()), pw)
	require.NoError(t, err)
	require.NoError(t, e.connect(storeID))
	e.waitSettled(storeID, types.ConnectionStateTypeConnected, "")

	start := time.Now()
	const n = 20
	for range n {
		e.createCustomKey(storeID)
	}
	t.Logf("%d CreateKeys in %v", n, time.Since(start))

	for round := range 2 {
		cust.WaitConverged()
		cust.Stop(1)
		requireCreateKeyRefused(t, e, storeID, 2*time.Second)
		// Refused again and again while it stays down (the view does not
		// forget).
		time.Sleep(1500 * time.Millisecond)
		requireCreateKeyRefused(t, e, storeID, 100*time.Millisecond)
		cust.Restart(1)
		cust.WaitConverged()
		requireCreateKeyWorks(t, e, storeID, 5*time.Second)
		t.Logf("round %d done", round)
	}
}
