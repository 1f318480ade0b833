package cloudhsm_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2/types"
	"github.com/stretchr/testify/require"

	"github.com/hsmsim/hsmsim/cluster"
)

// createCluster creates a cluster through the API.
func (e *env) createCluster(ctx context.Context, in *cloudhsmv2.CreateClusterInput) types.Cluster {
	e.t.Helper()
	if in.HsmType == nil {
		in.HsmType = aws.String("hsm2m.medium")
	}
	out, err := e.api.CreateCluster(ctx, in)
	require.NoError(e.t, err)
	return *out.Cluster
}

func TestValidation(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	c := e.createCluster(ctx, &cloudhsmv2.CreateClusterInput{SubnetIds: []string{"subnet-00000001"}})
	// subnet-00000011 joins subnet-00000001's VPC in the next AZ;
	// subnet-00000021 is in a VPC of its own, in the first AZ.
	e.createCluster(ctx, &cloudhsmv2.CreateClusterInput{SubnetIds: []string{"subnet-00000001", "subnet-00000011"}})
	e.createCluster(ctx, &cloudhsmv2.CreateClusterInput{SubnetIds: []string{"subnet-00000021"}})

	const notFound, invalid, validation = "CloudHsmResourceNotFoundException", "CloudHsmInvalidRequestException", "ValidationException"
	tests := []struct {
		name     string
		call     func() error
		code     string
		contains []string
	}{
		{"subnet id pattern", func() error {
			_, err := e.api.CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm2m.medium"), SubnetIds: []string{"subnet-xyz"}})
			return err
		}, validation, []string{"1 validation error detected: Value 'subnet-xyz' at 'subnetIds.1.member' failed to satisfy constraint: " +
			"Member must satisfy regular expression pattern: subnet-[0-9a-fA-F]{8,17}"}},
		{"no subnets", func() error {
			_, err := e.api.CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm2m.medium"), SubnetIds: []string{}})
			return err
		}, validation, []string{"at 'subnetIds' failed to satisfy constraint: Member must have length greater than or equal to 1"}},
		{"HSM type pattern", func() error {
			_, err := e.api.CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{HsmType: aws.String("big"), SubnetIds: []string{"subnet-00000001"}})
			return err
		}, validation, []string{"Value 'big' at 'hsmType'"}},
		{"HSM type hsmsim does not offer", func() error {
			_, err := e.api.CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm9.large"), SubnetIds: []string{"subnet-00000001"}})
			return err
		}, invalid, []string{"hsm9.large is not supported"}},
		{"NON_FIPS on hsm1", func() error {
			_, err := e.api.CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm1.medium"),
				SubnetIds: []string{"subnet-00000001"}, Mode: types.ClusterModeNonFips})
			return err
		}, invalid, []string{"NON_FIPS"}},
		{"retention too short", func() error {
			_, err := e.api.CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm2m.medium"), SubnetIds: []string{"subnet-00000001"},
				BackupRetentionPolicy: &types.BackupRetentionPolicy{Type: types.BackupRetentionTypeDays, Value: aws.String("6")}})
			return err
		}, invalid, []string{"between 7 and 379 days"}},
		{"retention not a number", func() error {
			_, err := e.api.CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm2m.medium"), SubnetIds: []string{"subnet-00000001"},
				BackupRetentionPolicy: &types.BackupRetentionPolicy{Type: types.BackupRetentionTypeDays, Value: aws.String("1w")}})
			return err
		}, validation, []string{"at 'backupRetentionPolicy.value'"}},
		{"more subnets than AZs", func() error {
			_, err := e.api.CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm2m.medium"),
				SubnetIds: []string{"subnet-00000011", "subnet-00000012", "subnet-00000013", "subnet-00000014"}})
			return err
		}, invalid, []string{"at most one subnet in each"}},
		{"a subnet twice", func() error {
			_, err := e.api.CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm2m.medium"),
				SubnetIds: []string{"subnet-00000011", "subnet-00000011"}})
			return err
		}, invalid, []string{"listed twice"}},
		{"two known subnets in one AZ", func() error {
			_, err := e.api.CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm2m.medium"),
				SubnetIds: []string{"subnet-00000001", "subnet-00000021"}})
			return err
		}, invalid, []string{"subnet-00000001 and subnet-00000021 are both in us-east-1a"}},
		{"known subnets of two VPCs", func() error {
			_, err := e.api.CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm2m.medium"),
				SubnetIds: []string{"subnet-00000011", "subnet-00000021"}})
			return err
		}, invalid, []string{"one VPC"}},
		{"unknown source backup", func() error {
			_, err := e.api.CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm2m.medium"),
				SubnetIds: []string{"subnet-00000001"}, SourceBackupId: aws.String("backup-aaaaaaaaaaa")})
			return err
		}, notFound, []string{"backup-aaaaaaaaaaa"}},
		{"tag key reserved by AWS", func() error {
			_, err := e.api.CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm2m.medium"),
				SubnetIds: []string{"subnet-00000001"}, TagList: []types.Tag{{Key: aws.String("aws:owner"), Value: aws.String("x")}}})
			return err
		}, "CloudHsmTagException", []string{"reserved"}},
		{"cluster id pattern", func() error {
			_, err := e.api.CreateHsm(ctx, &cloudhsmv2.CreateHsmInput{ClusterId: aws.String("cluster-bad"), AvailabilityZone: aws.String("us-east-1a")})
			return err
		}, validation, []string{"Value 'cluster-bad' at 'clusterId' failed to satisfy constraint: Member must satisfy regular expression pattern: cluster-[2-7a-zA-Z]{11,16}"}},
		{"cluster id with a prefix", func() error {
			_, err := e.api.CreateHsm(ctx, &cloudhsmv2.CreateHsmInput{ClusterId: aws.String("my" + aws.ToString(c.ClusterId)), AvailabilityZone: aws.String("us-east-1a")})
			return err
		}, validation, []string{"at 'clusterId'"}},
		{"AZ pattern", func() error {
			_, err := e.api.CreateHsm(ctx, &cloudhsmv2.CreateHsmInput{ClusterId: c.ClusterId, AvailabilityZone: aws.String("mars-1a")})
			return err
		}, validation, []string{"Value 'mars-1a' at 'availabilityZone'"}},
		{"two violations", func() error {
			_, err := e.api.CreateHsm(ctx, &cloudhsmv2.CreateHsmInput{ClusterId: aws.String("c"), AvailabilityZone: aws.String("a")})
			return err
		}, validation, []string{"2 validation errors detected: ", "at 'clusterId'", "; Value 'a' at 'availabilityZone'"}},
		{"an AZ without a subnet", func() error {
			_, err := e.api.CreateHsm(ctx, &cloudhsmv2.CreateHsmInput{ClusterId: c.ClusterId, AvailabilityZone: aws.String("us-east-1c")})
			return err
		}, invalid, []string{"us-east-1c has no subnet"}},
		{"unknown cluster", func() error {
			_, err := e.api.CreateHsm(ctx, &cloudhsmv2.CreateHsmInput{ClusterId: aws.String("cluster-aaaaaaaaaaa"), AvailabilityZone: aws.String("us-east-1a")})
			return err
		}, notFound, []string{"cluster-aaaaaaaaaaa"}},
		{"HSM id pattern", func() error {
			_, err := e.api.DeleteHsm(ctx, &cloudhsmv2.DeleteHsmInput{ClusterId: c.ClusterId, HsmId: aws.String("hsm-1")})
			return err
		}, validation, []string{"at 'hsmId'", "hsm-[2-7a-zA-Z]{11,16}"}},
		{"DeleteHsm without a name", func() error {
			_, err := e.api.DeleteHsm(ctx, &cloudhsmv2.DeleteHsmInput{ClusterId: c.ClusterId})
			return err
		}, invalid, []string{"HsmId, EniId or EniIp"}},
		{"DeleteHsm of an unknown HSM", func() error {
			_, err := e.api.DeleteHsm(ctx, &cloudhsmv2.DeleteHsmInput{ClusterId: c.ClusterId, HsmId: aws.String("hsm-aaaaaaaaaaa")})
			return err
		}, notFound, nil},
		{"InitializeCluster without HSMs", func() error {
			_, err := e.api.InitializeCluster(ctx, &cloudhsmv2.InitializeClusterInput{ClusterId: c.ClusterId,
				SignedCert: aws.String("x"), TrustAnchor: aws.String("y")})
			return err
		}, invalid, []string{"no HSM"}},
		{"certificate too long", func() error {
			_, err := e.api.InitializeCluster(ctx, &cloudhsmv2.InitializeClusterInput{ClusterId: c.ClusterId,
				SignedCert: aws.String(strings.Repeat("A", 20001)), TrustAnchor: aws.String("y")})
			return err
		}, validation, []string{"at 'signedCert' failed to satisfy constraint: Member must have length less than or equal to 20000"}},
		{"certificate pattern", func() error {
			_, err := e.api.InitializeCluster(ctx, &cloudhsmv2.InitializeClusterInput{ClusterId: c.ClusterId,
				SignedCert: aws.String("x"), TrustAnchor: aws.String("<script>")})
			return err
		}, validation, []string{"at 'trustAnchor'"}},
		{"DescribeClusters MaxResults", func() error {
			_, err := e.api.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{MaxResults: aws.Int32(26)})
			return err
		}, validation, []string{"Value '26' at 'maxResults' failed to satisfy constraint: Member must have value less than or equal to 25"}},
		{"DescribeBackups MaxResults", func() error {
			_, err := e.api.DescribeBackups(ctx, &cloudhsmv2.DescribeBackupsInput{MaxResults: aws.Int32(0)})
			return err
		}, validation, []string{"Member must have value greater than or equal to 1"}},
		{"unknown filter", func() error {
			_, err := e.api.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{Filters: map[string][]string{"names": {"x"}}})
			return err
		}, invalid, []string{"Invalid filter names"}},
		{"bad NextToken", func() error {
			_, err := e.api.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{NextToken: aws.String("garbage")})
			return err
		}, invalid, []string{"NextToken"}},
		{"another operation's NextToken", func() error {
			_, err := e.api.TagResource(ctx, &cloudhsmv2.TagResourceInput{ResourceId: c.ClusterId,
				TagList: []types.Tag{{Key: aws.String("a"), Value: aws.String("1")}, {Key: aws.String("b"), Value: aws.String("2")}}})
			if err != nil {
				return err
			}
			out, err := e.api.ListTags(ctx, &cloudhsmv2.ListTagsInput{ResourceId: c.ClusterId, MaxResults: aws.Int32(1)})
			if err != nil {
				return err
			}
			_, err = e.api.DescribeBackups(ctx, &cloudhsmv2.DescribeBackupsInput{NextToken: out.NextToken})
			return err
		}, invalid, []string{"NextToken"}},
		{"backup id pattern", func() error {
			_, err := e.api.DeleteBackup(ctx, &cloudhsmv2.DeleteBackupInput{BackupId: aws.String("bkp-1")})
			return err
		}, validation, []string{"at 'backupId'"}},
		{"unknown backup", func() error {
			_, err := e.api.RestoreBackup(ctx, &cloudhsmv2.RestoreBackupInput{BackupId: aws.String("backup-aaaaaaaaaaa")})
			return err
		}, notFound, nil},
		{"ModifyCluster retention", func() error {
			_, err := e.api.ModifyCluster(ctx, &cloudhsmv2.ModifyClusterInput{ClusterId: c.ClusterId,
				BackupRetentionPolicy: &types.BackupRetentionPolicy{Type: types.BackupRetentionTypeDays, Value: aws.String("380")}})
			return err
		}, invalid, []string{"between 7 and 379 days"}},
		{"ListTags MaxResults", func() error {
			_, err := e.api.ListTags(ctx, &cloudhsmv2.ListTagsInput{ResourceId: c.ClusterId, MaxResults: aws.Int32(101)})
			return err
		}, validation, []string{"less than or equal to 100"}},
		{"ResourceId pattern", func() error {
			_, err := e.api.ListTags(ctx, &cloudhsmv2.ListTagsInput{ResourceId: aws.String("hsm-aaaaaaaaaaa")})
			return err
		}, validation, []string{"at 'resourceId'"}},
		{"tag value pattern", func() error {
			_, err := e.api.TagResource(ctx, &cloudhsmv2.TagResourceInput{ResourceId: c.ClusterId,
				TagList: []types.Tag{{Key: aws.String("k"), Value: aws.String("a;b")}}})
			return err
		}, validation, []string{"Value 'a;b' at 'tagList.1.member.value'"}},
		{"hsmsim tag keys are reserved", func() error {
			_, err := e.api.TagResource(ctx, &cloudhsmv2.TagResourceInput{ResourceId: c.ClusterId,
				TagList: []types.Tag{{Key: aws.String(cluster.RoleTag), Value: aws.String(cluster.RoleKMSFleet)}}})
			return err
		}, "CloudHsmTagException", nil},
		{"too many tags", func() error {
			var tags []types.Tag
			for i := range 40 {
				tags = append(tags, types.Tag{Key: aws.String(fmt.Sprintf("k%d", i)), Value: aws.String("v")})
			}
			if _, err := e.api.TagResource(ctx, &cloudhsmv2.TagResourceInput{ResourceId: c.ClusterId, TagList: tags}); err != nil {
				return err
			}
			for i := range tags {
				tags[i].Key = aws.String(fmt.Sprintf("j%d", i))
			}
			_, err := e.api.TagResource(ctx, &cloudhsmv2.TagResourceInput{ResourceId: c.ClusterId, TagList: tags})
			return err
		}, "CloudHsmResourceLimitExceededException", []string{"limit is 50"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			requireAPIError(t, tt.call(), tt.code, tt.contains...)
		})
	}
}

// TestWireProtocol sends what the SDK would refuse to send.
func TestWireProtocol(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name, op, body   string
		status           int
		errType, message string
	}{
		{"required members", "CreateCluster", `{}`, 400, "ValidationException",
			"2 validation errors detected: Value null at 'hsmType' failed to satisfy constraint: Member must not be null; " +
				"Value null at 'subnetIds' failed to satisfy constraint: Member must not be null"},
		{"unknown member", "DescribeClusters", `{"Color":"red"}`, 400, "SerializationException", "Color"},
		{"wrong type", "DescribeClusters", `{"MaxResults":"ten"}`, 400, "SerializationException", "MaxResults"},
		{"required tag members", "TagResource", `{"ResourceId":"cluster-aaaaaaaaaaa","TagList":[{"Key":"a"}]}`, 400, "ValidationException",
			"Value null at 'tagList.1.member.value' failed to satisfy constraint: Member must not be null"},
		{"NeverExpires is required", "ModifyBackupAttributes", `{"BackupId":"backup-aaaaaaaaaaa"}`, 400, "ValidationException",
			"at 'neverExpires'"},
		{"unknown operation", "CopyBackupToRegion", `{}`, 400, "UnknownOperationException", "CopyBackupToRegion"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, e.url, strings.NewReader(tt.body))
			require.NoError(t, err)
			req.Header.Set("X-Amz-Target", "BaldrApiService."+tt.op)
			req.Header.Set("Content-Type", "application/x-amz-json-1.1")
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			raw, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			require.Equal(t, tt.status, resp.StatusCode, string(raw))
			var body map[string]string
			require.NoError(t, json.Unmarshal(raw, &body))
			require.Equal(t, tt.errType, body["__type"])
			require.Contains(t, body["Message"], tt.message, "CloudHSM spells the member Message")
		})
	}
}

func TestDescribeClusters(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	first := e.createCluster(ctx, &cloudhsmv2.CreateClusterInput{SubnetIds: []string{"subnet-00000001", "subnet-00000002", "subnet-00000003"}})
	second := e.createCluster(ctx, &cloudhsmv2.CreateClusterInput{SubnetIds: []string{"subnet-000000aa"}})
	_, err := e.mgr.CreateCluster(ctx, cluster.CreateClusterInput{AZs: cluster.DefaultAZs[:1],
		Tags: map[string]string{cluster.RoleTag: cluster.RoleKMSFleet}})
	require.NoError(t, err)

	require.Equal(t, map[string]string{"us-east-1a": "subnet-00000001", "us-east-1b": "subnet-00000002", "us-east-1c": "subnet-00000003"},
		first.SubnetMapping, "unknown subnets take the AZs in order")

	t.Run("pagination", func(t *testing.T) {
		page1, err := e.api.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{MaxResults: aws.Int32(1)})
		require.NoError(t, err)
		require.Len(t, page1.Clusters, 1)
		require.Equal(t, first.ClusterId, page1.Clusters[0].ClusterId, "oldest first")
		require.NotNil(t, page1.NextToken)
		page2, err := e.api.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{MaxResults: aws.Int32(1), NextToken: page1.NextToken})
		require.NoError(t, err)
		require.Len(t, page2.Clusters, 1)
		require.Equal(t, second.ClusterId, page2.Clusters[0].ClusterId)
		require.Nil(t, page2.NextToken, "the KMS fleet is not the customer's: two clusters in all")

		var ids []string
		pager := cloudhsmv2.NewDescribeClustersPaginator(e.api, &cloudhsmv2.DescribeClustersInput{MaxResults: aws.Int32(1)})
		for pager.HasMorePages() {
			out, err := pager.NextPage(ctx)
			require.NoError(t, err)
			for _, c := range out.Clusters {
				ids = append(ids, aws.ToString(c.ClusterId))
			}
		}
		require.Equal(t, []string{aws.ToString(first.ClusterId), aws.ToString(second.ClusterId)}, ids)
	})

	t.Run("filters", func(t *testing.T) {
		tests := []struct {
			name    string
			filters map[string][]string
			want    []*string
		}{
			{"cluster id", map[string][]string{"clusterIds": {aws.ToString(second.ClusterId)}}, []*string{second.ClusterId}},
			{"vpc id", map[string][]string{"vpcIds": {aws.ToString(first.VpcId)}}, []*string{first.ClusterId}},
			{"state", map[string][]string{"states": {"UNINITIALIZED"}}, []*string{first.ClusterId, second.ClusterId}},
			{"no match", map[string][]string{"states": {"ACTIVE"}}, nil},
			{"both", map[string][]string{"clusterIds": {aws.ToString(first.ClusterId)}, "states": {"ACTIVE"}}, nil},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				out, err := e.api.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{Filters: tt.filters})
				require.NoError(t, err)
				var got []*string
				for _, c := range out.Clusters {
					got = append(got, c.ClusterId)
				}
				require.Equal(t, tt.want, got)
			})
		}
	})

	t.Run("known subnets keep their AZ and VPC", func(t *testing.T) {
		c := e.createCluster(ctx, &cloudhsmv2.CreateClusterInput{SubnetIds: []string{"subnet-000000bb", "subnet-00000003"}})
		require.Equal(t, map[string]string{"us-east-1c": "subnet-00000003", "us-east-1a": "subnet-000000bb"}, c.SubnetMapping)
		require.Equal(t, first.VpcId, c.VpcId)
	})

	t.Run("ModifyCluster", func(t *testing.T) {
		c := e.createCluster(ctx, &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm1.medium"), SubnetIds: []string{"subnet-00000001"}})
		out, err := e.api.ModifyCluster(ctx, &cloudhsmv2.ModifyClusterInput{ClusterId: c.ClusterId, HsmType: aws.String("hsm2m.medium"),
			BackupRetentionPolicy: &types.BackupRetentionPolicy{Type: types.BackupRetentionTypeDays, Value: aws.String("379")}})
		require.NoError(t, err)
		require.Equal(t, "hsm2m.medium", aws.ToString(out.Cluster.HsmType))
		require.Equal(t, "379", aws.ToString(out.Cluster.BackupRetentionPolicy.Value))
		_, err = e.api.ModifyCluster(ctx, &cloudhsmv2.ModifyClusterInput{ClusterId: c.ClusterId, HsmType: aws.String("hsm1.medium")})
		requireAPIError(t, err, "CloudHsmInvalidRequestException", "cannot be migrated")
	})

	t.Run("the KMS fleet is not this API's", func(t *testing.T) {
		st, err := e.mgr.Store().Load()
		require.NoError(t, err)
		var fleet string
		for _, c := range st.Clusters {
			if c.IsKMSFleet() {
				fleet = c.ClusterID
			}
		}
		_, err = e.api.DeleteCluster(ctx, &cloudhsmv2.DeleteClusterInput{ClusterId: aws.String(fleet)})
		requireAPIError(t, err, "CloudHsmResourceNotFoundException")
		_, err = e.api.ListTags(ctx, &cloudhsmv2.ListTagsInput{ResourceId: aws.String(fleet)})
		requireAPIError(t, err, "CloudHsmResourceNotFoundException")
		_, err = e.api.CreateHsm(ctx, &cloudhsmv2.CreateHsmInput{ClusterId: aws.String(fleet), AvailabilityZone: aws.String("us-east-1a")})
		requireAPIError(t, err, "CloudHsmResourceNotFoundException")
	})
}

func TestTagsRoundTrip(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	c := e.createCluster(ctx, &cloudhsmv2.CreateClusterInput{SubnetIds: []string{"subnet-00000001"},
		TagList: []types.Tag{{Key: aws.String("env"), Value: aws.String("dev")}}})
	id := c.ClusterId

	_, err := e.api.TagResource(ctx, &cloudhsmv2.TagResourceInput{ResourceId: id, TagList: []types.Tag{
		{Key: aws.String("env"), Value: aws.String("prod")},
		{Key: aws.String("team"), Value: aws.String("blue")},
		{Key: aws.String("cost center"), Value: aws.String("")},
	}})
	require.NoError(t, err)

	var got []types.Tag
	pager := cloudhsmv2.NewListTagsPaginator(e.api, &cloudhsmv2.ListTagsInput{ResourceId: id, MaxResults: aws.Int32(2)})
	pages := 0
	for pager.HasMorePages() {
		out, err := pager.NextPage(ctx)
		require.NoError(t, err)
		got = append(got, out.TagList...)
		pages++
	}
	require.Equal(t, 2, pages)
	require.Equal(t, []types.Tag{
		{Key: aws.String("cost center"), Value: aws.String("")},
		{Key: aws.String("env"), Value: aws.String("prod")},
		{Key: aws.String("team"), Value: aws.String("blue")},
	}, got)

	_, err = e.api.UntagResource(ctx, &cloudhsmv2.UntagResourceInput{ResourceId: id, TagKeyList: []string{"env", "cost center", "absent"}})
	require.NoError(t, err)
	out, err := e.api.ListTags(ctx, &cloudhsmv2.ListTagsInput{ResourceId: id})
	require.NoError(t, err)
	require.Equal(t, []types.Tag{{Key: aws.String("team"), Value: aws.String("blue")}}, out.TagList)
	require.Nil(t, out.NextToken)
	described, err := e.api.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{})
	require.NoError(t, err)
	require.Equal(t, out.TagList, described.Clusters[0].TagList, "DescribeClusters shows the tags")

	_, err = e.api.UntagResource(ctx, &cloudhsmv2.UntagResourceInput{ResourceId: id, TagKeyList: []string{"team"}})
	require.NoError(t, err)
	out, err = e.api.ListTags(ctx, &cloudhsmv2.ListTagsInput{ResourceId: id})
	require.NoError(t, err)
	require.Empty(t, out.TagList)

	_, err = e.api.ListTags(ctx, &cloudhsmv2.ListTagsInput{ResourceId: aws.String("backup-aaaaaaaaaaa")})
	requireAPIError(t, err, "CloudHsmResourceNotFoundException")
}

func TestReset(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	fleet, err := e.mgr.CreateCluster(ctx, cluster.CreateClusterInput{AZs: cluster.DefaultAZs[:1],
		Tags: map[string]string{cluster.RoleTag: cluster.RoleKMSFleet}})
	require.NoError(t, err)
	c := e.createCluster(ctx, &cloudhsmv2.CreateClusterInput{SubnetIds: []string{"subnet-00000001"}})
	_, err = e.api.CreateHsm(ctx, &cloudhsmv2.CreateHsmInput{ClusterId: c.ClusterId, AvailabilityZone: aws.String("us-east-1a")})
	require.NoError(t, err)
	record, err := e.mgr.Cluster(aws.ToString(c.ClusterId))
	require.NoError(t, err)
	require.True(t, e.prov.Running(record.Hsms[0].Runtime))

	require.NoError(t, e.svc.Reset(ctx))

	require.False(t, e.prov.Running(record.Hsms[0].Runtime), "the HSM is stopped")
	out, err := e.api.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{Filters: map[string][]string{"states": {"DELETED", "UNINITIALIZED"}}})
	require.NoError(t, err)
	require.Empty(t, out.Clusters)
	st, err := e.mgr.Store().Load()
	require.NoError(t, err)
	require.Len(t, st.Clusters, 1, "the KMS fleet stays")
	require.Equal(t, fleet.ClusterID, st.Clusters[0].ClusterID)
}
