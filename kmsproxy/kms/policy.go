package kms

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"regexp"
	"strings"

	"github.com/hsmsim/hsmsim/kmsproxy/awsjson"
	"github.com/hsmsim/hsmsim/kmsproxy/store"
)

// policyCharsRE is PolicyType's pattern (botocore), anchored.
var policyCharsRE = regexp.MustCompile(`^[\x{0009}\x{000A}\x{000D}\x{0020}-\x{00FF}]+$`)

// awsPrincipalRE is an AWS principal of a key policy: "*", an account id,
// or an IAM or STS ARN.
var awsPrincipalRE = regexp.MustCompile(`^(\*|[0-9]{12}|arn:aws[a-z-]*:(iam|sts)::[0-9]{12}:[^\s]+)$`)

// checkPolicy checks a key policy document: the 32 KB quota
// (LimitExceededException), the model's character set, then that it is a
// JSON object, whose Version (if any) is 2012-10-17 or 2008-10-17, and
// whose Statement (an object or a non-empty list) holds statements with
// an Effect of Allow or Deny and a valid Principal: "*" or an object of
// AWS (account ids, IAM or STS ARNs, "*"), Service, Federated or
// CanonicalUser principals (MalformedPolicyDocumentException). Policies
// are kept, not evaluated: there is no IAM here, and the lockout safety
// check has nothing to check against.
func checkPolicy(p string) error {
	if len(p) > maxPolicyBytes {
		return newErr(excLimitExceeded, "The key policy exceeds the quota of %d bytes.", maxPolicyBytes)
	}
	if !policyCharsRE.MatchString(p) {
		return newErr(excMalformedPolicyDocument, "The policy contains characters that are not allowed.")
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal([]byte(p), &doc); err != nil {
		return newErr(excMalformedPolicyDocument, "The policy is not a syntactically correct JSON object.")
	}
	if raw, found := doc["Version"]; found {
		var version string
		if err := json.Unmarshal(raw, &version); err != nil || (version != "2012-10-17" && version != "2008-10-17") {
			return newErr(excMalformedPolicyDocument, "The policy Version must be 2012-10-17 or 2008-10-17.")
		}
	}
	raw, found := doc["Statement"]
	if !found {
		return newErr(excMalformedPolicyDocument, "The policy has no Statement.")
	}
	var stmts []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &stmts); err != nil {
		var one map[string]json.RawMessage
		if err := json.Unmarshal(raw, &one); err != nil {
			return newErr(excMalformedPolicyDocument, "The policy's Statement must be an object or a list of objects.")
		}
		stmts = append(stmts, one)
	}
	if len(stmts) == 0 {
		return newErr(excMalformedPolicyDocument, "The policy has no Statement.")
	}
	for _, st := range stmts {
		var effect string
		if err := json.Unmarshal(st["Effect"], &effect); err != nil || (effect != "Allow" && effect != "Deny") {
			return newErr(excMalformedPolicyDocument, "Policy contains a statement whose Effect is not Allow or Deny.")
		}
		principal, found := st["Principal"]
		if !found {
			principal, found = st["NotPrincipal"]
		}
		if !found || len(principal) == 0 || string(principal) == "null" {
			return newErr(excMalformedPolicyDocument, "Policy contains a statement with no principal.")
		}
		if !validPrincipal(principal) {
			return newErr(excMalformedPolicyDocument, "Policy contains a statement with one or more invalid principals.")
		}
	}
	return nil
}

// validPrincipal checks a statement's Principal: "*", or an object whose
// members are AWS, Service, Federated or CanonicalUser, each a non-empty
// string or list of strings, AWS ones matching awsPrincipalRE.
func validPrincipal(raw json.RawMessage) bool {
	var star string
	if json.Unmarshal(raw, &star) == nil {
		return star == "*"
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil || len(m) == 0 {
		return false
	}
	for kind, v := range m {
		var values []string
		var one string
		if json.Unmarshal(v, &one) == nil {
			values = []string{one}
		} else if json.Unmarshal(v, &values) != nil || len(values) == 0 {
			return false
		}
		for _, p := range values {
			switch kind {
			case "AWS":
				if !awsPrincipalRE.MatchString(p) {
					return false
				}
			case "Service", "Federated", "CanonicalUser":
				if p == "" {
					return false
				}
			default:
				return false
			}
		}
	}
	return true
}

type putKeyPolicyInput struct {
	KeyID                          *string `json:"KeyId"`
	PolicyName                     *string `json:"PolicyName"`
	Policy                         *string `json:"Policy"`
	BypassPolicyLockoutSafetyCheck *bool   `json:"BypassPolicyLockoutSafetyCheck"`
}

// putKeyPolicy is PutKeyPolicy: replaces the key's policy (the only one,
// "default"), in any key state. The lockout safety check has no IAM to
// consult, so BypassPolicyLockoutSafetyCheck changes nothing.
func (s *Service) putKeyPolicy(_ context.Context, r *awsjson.Request) (any, error) {
	var in putKeyPolicyInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsjson.Validator
	checkKeyID(&v, "KeyId", in.KeyID)
	v.Length("PolicyName", in.PolicyName, 1, 128)
	v.Pattern("PolicyName", in.PolicyName, policyNameRE)
	v.Required("Policy", in.Policy != nil)
	v.Length("Policy", in.Policy, 1, 131072)
	if err := v.Err(); err != nil {
		return nil, err
	}
	if in.PolicyName != nil && *in.PolicyName != "default" {
		return nil, validation("The only valid value of PolicyName is default.")
	}
	if err := checkPolicy(*in.Policy); err != nil {
		return nil, err
	}
	_, err := s.updateKey("PutKeyPolicy", *in.KeyID, func(_ *store.Tx, ki *keyInfo) error {
		ki.k.Policy = *in.Policy
		return nil
	})
	return nil, err
}

type getKeyPolicyInput struct {
	KeyID      *string `json:"KeyId"`
	PolicyName *string `json:"PolicyName"`
}

type getKeyPolicyOutput struct {
	Policy     string `json:"Policy"`
	PolicyName string `json:"PolicyName"`
}

var policyNameRE = regexp.MustCompile(`^[\w]+$`)

// getKeyPolicy is GetKeyPolicy; the only policy name is "default".
func (s *Service) getKeyPolicy(_ context.Context, r *awsjson.Request) (any, error) {
	var in getKeyPolicyInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsjson.Validator
	checkKeyID(&v, "KeyId", in.KeyID)
	v.Length("PolicyName", in.PolicyName, 1, 128)
	v.Pattern("PolicyName", in.PolicyName, policyNameRE)
	if err := v.Err(); err != nil {
		return nil, err
	}
	ki, err := s.viewKey("GetKeyPolicy", *in.KeyID, false)
	if err != nil {
		return nil, err
	}
	if in.PolicyName != nil && *in.PolicyName != "default" {
		return nil, newErr(excNotFound, "No such policy exists: %s", *in.PolicyName)
	}
	return getKeyPolicyOutput{Policy: ki.k.Policy, PolicyName: "default"}, nil
}

type listKeyPoliciesInput struct {
	KeyID  *string `json:"KeyId"`
	Limit  *int64  `json:"Limit"`
	Marker *string `json:"Marker"`
}

type listKeyPoliciesOutput struct {
	PolicyNames []string `json:"PolicyNames"`
	Truncated   bool     `json:"Truncated"`
}

// listKeyPolicies is ListKeyPolicies: ["default"], on one page, so that
// no marker is ever valid.
func (s *Service) listKeyPolicies(_ context.Context, r *awsjson.Request) (any, error) {
	var in listKeyPoliciesInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsjson.Validator
	checkKeyID(&v, "KeyId", in.KeyID)
	checkList(&v, listInput{Limit: in.Limit, Marker: in.Marker}, 1000, 100)
	if err := v.Err(); err != nil {
		return nil, err
	}
	if _, err := s.viewKey("ListKeyPolicies", *in.KeyID, false); err != nil {
		return nil, err
	}
	if in.Marker != nil {
		return nil, invalidMarker()
	}
	return listKeyPoliciesOutput{PolicyNames: []string{"default"}}, nil
}

type tagResourceInput struct {
	KeyID *string `json:"KeyId"`
	Tags  []tag   `json:"Tags"`
}

// tagResource is TagResource: adds or overwrites tags.
func (s *Service) tagResource(_ context.Context, r *awsjson.Request) (any, error) {
	var in tagResourceInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsjson.Validator
	checkKeyID(&v, "KeyId", in.KeyID)
	v.Required("Tags", in.Tags != nil)
	checkTags(&v, "tags", in.Tags)
	if err := v.Err(); err != nil {
		return nil, err
	}
	_, err := s.updateKey("TagResource", *in.KeyID, func(_ *store.Tx, ki *keyInfo) error {
		tags, err := mergeTags(ki.k.Tags, in.Tags)
		ki.k.Tags = tags
		return err
	})
	return nil, err
}

type untagResourceInput struct {
	KeyID   *string  `json:"KeyId"`
	TagKeys []string `json:"TagKeys"`
}

// untagResource is UntagResource; absent tag keys are ignored.
func (s *Service) untagResource(_ context.Context, r *awsjson.Request) (any, error) {
	var in untagResourceInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsjson.Validator
	checkKeyID(&v, "KeyId", in.KeyID)
	v.Required("TagKeys", in.TagKeys != nil)
	for i := range in.TagKeys {
		v.Length("tagKeys."+itoa(i+1)+".member", &in.TagKeys[i], 1, 128)
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	_, err := s.updateKey("UntagResource", *in.KeyID, func(_ *store.Tx, ki *keyInfo) error {
		drop := map[string]bool{}
		for _, k := range in.TagKeys {
			if strings.HasPrefix(k, "aws:") {
				return newErr(excTag, "Tag keys beginning with aws: are reserved for AWS use.")
			}
			drop[k] = true
		}
		kept := ki.k.Tags[:0:0]
		for _, t := range ki.k.Tags {
			if !drop[t.Key] {
				kept = append(kept, t)
			}
		}
		ki.k.Tags = kept
		return nil
	})
	return nil, err
}

type listResourceTagsInput struct {
	KeyID  *string `json:"KeyId"`
	Limit  *int64  `json:"Limit"`
	Marker *string `json:"Marker"`
}

type tagOutput struct {
	TagKey   string `json:"TagKey"`
	TagValue string `json:"TagValue"`
}

type listResourceTagsOutput struct {
	Tags       []tagOutput `json:"Tags"`
	NextMarker string      `json:"NextMarker,omitempty"`
	Truncated  bool        `json:"Truncated"`
}

// listResourceTags is ListResourceTags: tags by key, pages of up to 50;
// the marker is the hex of the next page's first tag key.
func (s *Service) listResourceTags(_ context.Context, r *awsjson.Request) (any, error) {
	var in listResourceTagsInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsjson.Validator
	checkKeyID(&v, "KeyId", in.KeyID)
	limit := checkList(&v, listInput{Limit: in.Limit, Marker: in.Marker}, 50, 50)
	if err := v.Err(); err != nil {
		return nil, err
	}
	ki, err := s.viewKey("ListResourceTags", *in.KeyID, false)
	if err != nil {
		return nil, err
	}
	tags := ki.k.Tags
	if in.Marker != nil {
		start, err := hex.DecodeString(*in.Marker)
		if err != nil || len(start) == 0 {
			return nil, invalidMarker()
		}
		i := 0
		for i < len(tags) && tags[i].Key < string(start) {
			i++
		}
		tags = tags[i:]
	}
	out := listResourceTagsOutput{Tags: []tagOutput{}}
	for i, t := range tags {
		if i == limit {
			out.NextMarker, out.Truncated = hex.EncodeToString([]byte(t.Key)), true
			break
		}
		out.Tags = append(out.Tags, tagOutput{TagKey: t.Key, TagValue: t.Value})
	}
	return out, nil
}
