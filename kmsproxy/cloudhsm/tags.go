package cloudhsm

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/hsmsim/hsmsim/kmsproxy/awsjson"
)

// reservedTagPrefixes are tag key prefixes a caller may not set or remove:
// AWS's own, and hsmsim's (hsmsim:role marks the KMS fleet).
var reservedTagPrefixes = []string{"aws:", "hsmsim:"}

// tagInput is a Tag as a request carries it: both members are required.
type tagInput struct {
	Key   *string `json:"Key"`
	Value *string `json:"Value"`
}

// checkTags validates a TagList (1..50 tags) member by member.
func checkTags(v *awsjson.Validator, member string, tags []tagInput) error {
	keys := make([]string, 0, len(tags))
	for i, t := range tags {
		at := fmt.Sprintf("%s.%d.member.", member, i+1)
		v.Required(at+"key", t.Key != nil)
		v.Required(at+"value", t.Value != nil)
		v.Length(at+"key", t.Key, 1, 128)
		checkPattern(v, at+"key", t.Key, tagPattern)
		v.Length(at+"value", t.Value, 0, 256)
		checkPattern(v, at+"value", t.Value, tagPattern)
		if t.Key != nil {
			keys = append(keys, "Tag(key="+*t.Key+")")
		}
	}
	return checkListLength(member, keys, tags != nil, 1, 50)
}

// reservedTags refuses tags with a reserved key prefix.
func reservedTags(tags []tagInput) error {
	keys := make([]string, 0, len(tags))
	for _, t := range tags {
		keys = append(keys, *t.Key)
	}
	return reservedKeys(keys)
}

func reservedKeys(keys []string) error {
	for _, k := range keys {
		for _, p := range reservedTagPrefixes {
			if strings.HasPrefix(strings.ToLower(k), p) {
				return awsjson.Errorf(errTag, http.StatusBadRequest, "Tag keys starting with %s are reserved: %s.", p, k)
			}
		}
	}
	return nil
}

// tagMap returns validated tags as a map; a later duplicate key wins.
func tagMap(tags []tagInput) map[string]string {
	if len(tags) == 0 {
		return nil
	}
	out := map[string]string{}
	for _, t := range tags {
		out[*t.Key] = *t.Value
	}
	return out
}

// checkResourceID validates ResourceId and checks that this API shows the
// resource (a cluster or a backup, not of the KMS fleet).
func (s *Service) checkResourceID(v *awsjson.Validator, id *string) error {
	v.Required("ResourceId", id != nil)
	checkPattern(v, "ResourceId", id, resourceIDPattern)
	if err := v.Err(); err != nil {
		return err
	}
	if strings.HasPrefix(*id, "cluster-") {
		_, err := s.visibleCluster(*id)
		return err
	}
	_, _, err := s.visibleBackup(*id)
	return err
}

type tagResourceInput struct {
	ResourceID *string    `json:"ResourceId"`
	TagList    []tagInput `json:"TagList"`
}

// tagResource adds tags to a cluster or a backup, replacing values of keys
// it has.
func (s *Service) tagResource(ctx context.Context, r *awsjson.Request) (any, error) {
	var in tagResourceInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsjson.Validator
	v.Required("TagList", in.TagList != nil)
	if err := checkTags(&v, "tagList", in.TagList); err != nil {
		return nil, err
	}
	if err := s.checkResourceID(&v, in.ResourceID); err != nil {
		return nil, err
	}
	if err := reservedTags(in.TagList); err != nil {
		return nil, err
	}
	if _, err := s.mgr.TagResource(*in.ResourceID, tagMap(in.TagList)); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

type untagResourceInput struct {
	ResourceID *string  `json:"ResourceId"`
	TagKeyList []string `json:"TagKeyList"`
}

// untagResource removes tags by key.
func (s *Service) untagResource(ctx context.Context, r *awsjson.Request) (any, error) {
	var in untagResourceInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	if err := checkListLength("tagKeyList", in.TagKeyList, in.TagKeyList != nil, 1, 50); err != nil {
		return nil, err
	}
	var v awsjson.Validator
	v.Required("TagKeyList", in.TagKeyList != nil)
	for i := range in.TagKeyList {
		at := fmt.Sprintf("tagKeyList.%d.member", i+1)
		v.Length(at, &in.TagKeyList[i], 1, 128)
		checkPattern(&v, at, &in.TagKeyList[i], tagPattern)
	}
	if err := s.checkResourceID(&v, in.ResourceID); err != nil {
		return nil, err
	}
	if err := reservedKeys(in.TagKeyList); err != nil {
		return nil, err
	}
	if err := s.mgr.UntagResource(*in.ResourceID, in.TagKeyList); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

type listTagsOutput struct {
	TagList   []tag   `json:"TagList"`
	NextToken *string `json:"NextToken,omitempty"`
}

type listTagsInput struct {
	ResourceID *string `json:"ResourceId"`
	NextToken  *string `json:"NextToken"`
	MaxResults *int64  `json:"MaxResults"`
}

// listTags lists a resource's tags, sorted by key.
func (s *Service) listTags(ctx context.Context, r *awsjson.Request) (any, error) {
	var in listTagsInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsjson.Validator
	checkPaging(&v, in.MaxResults, 100, in.NextToken)
	if err := s.checkResourceID(&v, in.ResourceID); err != nil {
		return nil, err
	}
	tags, err := s.mgr.Tags(*in.ResourceID)
	if err != nil {
		return nil, err
	}
	keys := slices.Sorted(maps.Keys(tags))
	from, to, next, err := page("ListTags", len(keys), in.NextToken, in.MaxResults)
	if err != nil {
		return nil, err
	}
	out := make([]tag, 0, to-from)
	for _, k := range keys[from:to] {
		out = append(out, tag{Key: k, Value: tags[k]})
	}
	return listTagsOutput{TagList: out, NextToken: next}, nil
}
