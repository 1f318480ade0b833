package main

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/hsmsim/hsmsim/cluster/client"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

// PasswordEnv is the environment variable hsmctl reads the password from
// when --password is not given.
const PasswordEnv = "HSMCTL_PASSWORD"

// hsmOpts are the flags every HSM-side command has: where the cluster is and
// who logs in for this one command.
type hsmOpts struct {
	dir, clusterID, username, role, password *string
	// the command's own flags
	s map[string]*string
	u map[string]*uint
	b map[string]*bool
}

// hsmFlags declares the common flags plus the command's own.
func hsmFlags(defaultRole string, strs map[string]string, uints map[string]string, bools map[string]string) func(fs *flag.FlagSet) any {
	return func(fs *flag.FlagSet) any {
		o := &hsmOpts{
			dir:       fs.String("dir", DefaultDir, "deployment directory"),
			clusterID: fs.String("cluster-id", "", "the cluster (required)"),
			username:  fs.String("username", "admin", "the user to log in as"),
			role:      fs.String("role", defaultRole, "the role to log in as: admin, crypto-user or unactivated-admin"),
			password:  fs.String("password", "", "the password (default: $"+PasswordEnv+")"),
			s:         map[string]*string{}, u: map[string]*uint{}, b: map[string]*bool{},
		}
		for name, usage := range strs {
			o.s[name] = fs.String(name, "", usage)
		}
		for name, usage := range uints {
			o.u[name] = fs.Uint(name, 0, usage)
		}
		for name, usage := range bools {
			o.b[name] = fs.Bool(name, false, usage)
		}
		return o
	}
}

func parseRole(s string) (hsmv1.Role, error) {
	switch s {
	case "admin":
		return hsmv1.Role_ROLE_ADMIN, nil
	case "crypto-user":
		return hsmv1.Role_ROLE_CRYPTO_USER, nil
	case "unactivated-admin":
		return hsmv1.Role_ROLE_UNACTIVATED_ADMIN, nil
	}
	return 0, fmt.Errorf("%w: role %q is not admin, crypto-user or unactivated-admin", errUsage, s)
}

func roleText(r hsmv1.Role) string {
	return map[hsmv1.Role]string{hsmv1.Role_ROLE_ADMIN: "admin", hsmv1.Role_ROLE_CRYPTO_USER: "crypto-user",
		hsmv1.Role_ROLE_UNACTIVATED_ADMIN: "unactivated-admin", hsmv1.Role_ROLE_APPLIANCE: "appliance"}[r]
}

// session logs the command's user in on every HSM of the cluster.
func (o *hsmOpts) session(ctx context.Context) (hsmv1.HsmServiceClient, *client.Client, error) {
	if *o.clusterID == "" {
		return nil, nil, fmt.Errorf("%w: --cluster-id is required", errUsage)
	}
	role, err := parseRole(*o.role)
	if err != nil {
		return nil, nil, err
	}
	pw := *o.password
	if pw == "" {
		pw = os.Getenv(PasswordEnv)
	}
	if pw == "" {
		return nil, nil, fmt.Errorf("%w: --password or $%s is required", errUsage, PasswordEnv)
	}
	d, err := openDeployment(*o.dir, false, nil)
	if err != nil {
		return nil, nil, err
	}
	c, err := d.hsmClient(ctx, *o.clusterID, *o.username, pw, role)
	if err != nil {
		return nil, nil, err
	}
	return hsmv1.NewHsmServiceClient(c), c, nil
}

// hsmCommand builds a command that logs in and calls do.
func hsmCommand(name, summary, role string, strs, uints, bools map[string]string,
	do func(ctx context.Context, e *env, o *hsmOpts, hsm hsmv1.HsmServiceClient) error) *command {
	return &command{name: name, summary: summary, flags: hsmFlags(role, strs, uints, bools),
		run: func(ctx context.Context, e *env, opts any, _ []string) error {
			o := opts.(*hsmOpts)
			hsm, c, err := o.session(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			return do(ctx, e, o, hsm)
		}}
}

func done(e *env, what string) error {
	return e.emit(map[string]string{"done": what}, func(w io.Writer) { fmt.Fprintln(w, what) })
}

func need(o *hsmOpts, names ...string) error {
	for _, n := range names {
		if v, ok := o.s[n]; ok && *v == "" {
			return fmt.Errorf("%w: --%s is required", errUsage, n)
		}
		if v, ok := o.u[n]; ok && *v == 0 {
			return fmt.Errorf("%w: --%s is required", errUsage, n)
		}
	}
	return nil
}

func hsmCommands() []*command {
	return []*command{
		{name: "cluster activate", summary: "set the admin password and activate the cluster", flags: hsmFlags("unactivated-admin", nil, nil, nil),
			run: runActivate},
		hsmCommand("login", "check credentials: exit status 0 when they log in on the cluster", "admin", nil, nil, nil,
			func(ctx context.Context, e *env, o *hsmOpts, _ hsmv1.HsmServiceClient) error {
				return done(e, fmt.Sprintf("logged in as %s (%s)", *o.username, *o.role))
			}),
		hsmCommand("user create", "create a user (admins)", "admin",
			map[string]string{"new-username": "the new user's name", "new-role": "admin or crypto-user", "new-password": "the new user's password (8 to 32 characters)", "quorum-token-id": quorumTokenFlag}, nil, nil,
			func(ctx context.Context, e *env, o *hsmOpts, hsm hsmv1.HsmServiceClient) error {
				if err := need(o, "new-username", "new-role", "new-password"); err != nil {
					return err
				}
				role, err := parseRole(*o.s["new-role"])
				if err != nil {
					return err
				}
				if _, err := hsm.CreateUser(ctx, &hsmv1.CreateUserRequest{Username: *o.s["new-username"], Role: role, Password: *o.s["new-password"], QuorumTokenId: *o.s["quorum-token-id"]}); err != nil {
					return err
				}
				return done(e, "user "+*o.s["new-username"]+" created")
			}),
		hsmCommand("user delete", "delete a user (admins)", "admin", map[string]string{"target-username": "the user to delete", "quorum-token-id": quorumTokenFlag}, nil, nil,
			func(ctx context.Context, e *env, o *hsmOpts, hsm hsmv1.HsmServiceClient) error {
				if err := need(o, "target-username"); err != nil {
					return err
				}
				if _, err := hsm.DeleteUser(ctx, &hsmv1.DeleteUserRequest{Username: *o.s["target-username"], QuorumTokenId: *o.s["quorum-token-id"]}); err != nil {
					return err
				}
				return done(e, "user "+*o.s["target-username"]+" deleted")
			}),
		hsmCommand("user list", "list users", "admin", nil, nil, nil,
			func(ctx context.Context, e *env, o *hsmOpts, hsm hsmv1.HsmServiceClient) error {
				resp, err := hsm.ListUsers(ctx, &hsmv1.ListUsersRequest{})
				if err != nil {
					return err
				}
				type row struct {
					Username     string `json:"username"`
					Role         string `json:"role"`
					Locked       bool   `json:"locked"`
					FailedLogins uint32 `json:"failed_logins"`
				}
				var rows []row
				for _, u := range resp.GetUsers() {
					rows = append(rows, row{u.GetUsername(), roleText(u.GetRole()), u.GetLocked(), u.GetFailedLogins()})
				}
				return e.emit(rows, func(w io.Writer) {
					tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
					fmt.Fprintln(tw, "USERNAME\tROLE\tLOCKED\tFAILED LOGINS")
					for _, r := range rows {
						fmt.Fprintf(tw, "%s\t%s\t%v\t%d\n", r.Username, r.Role, r.Locked, r.FailedLogins)
					}
					tw.Flush()
				})
			}),
		hsmCommand("user change-password", "change a password (an admin any user's, which unlocks it; a crypto user its own)", "admin",
			map[string]string{"target-username": "whose password (default: the logged-in user)", "new-password": "the new password", "quorum-token-id": quorumTokenFlag}, nil, nil,
			func(ctx context.Context, e *env, o *hsmOpts, hsm hsmv1.HsmServiceClient) error {
				if err := need(o, "new-password"); err != nil {
					return err
				}
				target := *o.s["target-username"]
				if target == "" {
					target = *o.username
				}
				if _, err := hsm.ChangePassword(ctx, &hsmv1.ChangePasswordRequest{Username: target, NewPassword: *o.s["new-password"], QuorumTokenId: *o.s["quorum-token-id"]}); err != nil {
					return err
				}
				return done(e, "password of "+target+" changed")
			}),
		hsmCommand("key generate-symmetric", "generate an AES or generic secret key (crypto users)", "crypto-user",
			map[string]string{"key-type": "aes or generic-secret", "label": "the key's label", "id": "the key's id, in hex"},
			map[string]string{"key-size": "size in bits (AES: 128, 192, 256)"}, map[string]string{"extractable": "the key may be wrapped out"},
			runGenerateSymmetric),
		hsmCommand("key generate-asymmetric-pair", "generate an RSA or EC key pair (crypto users)", "crypto-user",
			map[string]string{"key-type": "rsa or ec", "curve": "ec: p256, p384 or p521", "label": "the keys' label", "id": "the keys' id, in hex"},
			map[string]string{"modulus-bits": "rsa: 2048, 3072 or 4096"}, map[string]string{"extractable": "the private key may be wrapped out"},
			runGeneratePair),
		hsmCommand("key list", "list the keys the user can see", "crypto-user", map[string]string{"label": "only keys with this label"}, nil, nil,
			func(ctx context.Context, e *env, o *hsmOpts, hsm hsmv1.HsmServiceClient) error {
				resp, err := hsm.FindKeys(ctx, &hsmv1.FindKeysRequest{Label: *o.s["label"]})
				if err != nil {
					return err
				}
				return e.emit(resp.GetKeys(), func(w io.Writer) { printKeys(w, resp.GetKeys()) })
			}),
		hsmCommand("key delete", "delete a key (its owner)", "crypto-user", nil, map[string]string{"handle": "the key's handle"}, nil,
			func(ctx context.Context, e *env, o *hsmOpts, hsm hsmv1.HsmServiceClient) error {
				if err := need(o, "handle"); err != nil {
					return err
				}
				if _, err := hsm.DeleteKey(ctx, &hsmv1.DeleteKeyRequest{Handle: uint64(*o.u["handle"])}); err != nil {
					return err
				}
				return done(e, fmt.Sprintf("key %d deleted", *o.u["handle"]))
			}),
		hsmCommand("key share", "let another crypto user use a key (its owner)", "crypto-user",
			map[string]string{"target-username": "the crypto user"}, map[string]string{"handle": "the key's handle"}, nil,
			func(ctx context.Context, e *env, o *hsmOpts, hsm hsmv1.HsmServiceClient) error {
				if err := need(o, "handle", "target-username"); err != nil {
					return err
				}
				if _, err := hsm.ShareKey(ctx, &hsmv1.ShareKeyRequest{Handle: uint64(*o.u["handle"]), Username: *o.s["target-username"]}); err != nil {
					return err
				}
				return done(e, fmt.Sprintf("key %d shared with %s", *o.u["handle"], *o.s["target-username"]))
			}),
		hsmCommand("key unshare", "stop sharing a key (its owner)", "crypto-user",
			map[string]string{"target-username": "the crypto user"}, map[string]string{"handle": "the key's handle"}, nil,
			func(ctx context.Context, e *env, o *hsmOpts, hsm hsmv1.HsmServiceClient) error {
				if err := need(o, "handle", "target-username"); err != nil {
					return err
				}
				if _, err := hsm.UnshareKey(ctx, &hsmv1.UnshareKeyRequest{Handle: uint64(*o.u["handle"]), Username: *o.s["target-username"]}); err != nil {
					return err
				}
				return done(e, fmt.Sprintf("key %d no longer shared with %s", *o.u["handle"], *o.s["target-username"]))
			}),
		hsmCommand("key wrap", "wrap an extractable key under another key; prints base64", "crypto-user",
			map[string]string{"mechanism": "aes-kw, aes-kwp, rsa-oaep or rsa-aes"},
			map[string]string{"handle": "the key to wrap", "wrapping-handle": "the wrapping key"}, nil,
			func(ctx context.Context, e *env, o *hsmOpts, hsm hsmv1.HsmServiceClient) error {
				if err := need(o, "handle", "wrapping-handle", "mechanism"); err != nil {
					return err
				}
				mech, err := parseWrapMechanism(*o.s["mechanism"])
				if err != nil {
					return err
				}
				resp, err := hsm.WrapKey(ctx, &hsmv1.WrapKeyRequest{KeyHandle: uint64(*o.u["handle"]), WrappingHandle: uint64(*o.u["wrapping-handle"]), Mechanism: mech})
				if err != nil {
					return err
				}
				b64 := base64.StdEncoding.EncodeToString(resp.GetWrapped())
				return e.emit(map[string]string{"wrapped": b64}, func(w io.Writer) { fmt.Fprintln(w, b64) })
			}),
		hsmCommand("key unwrap", "import a wrapped key as a new key", "crypto-user",
			map[string]string{"mechanism": "aes-kw, aes-kwp, rsa-oaep or rsa-aes", "data": "the wrapped key, base64", "key-type": "aes, generic-secret, rsa or ec", "label": "the new key's label"},
			map[string]string{"unwrapping-handle": "the unwrapping key"}, map[string]string{"extractable": "the new key may be wrapped out"},
			runUnwrap),
	}
}

func runActivate(ctx context.Context, e *env, opts any, _ []string) error {
	o := opts.(*hsmOpts)
	if *o.clusterID == "" || *o.password == "" && os.Getenv(PasswordEnv) == "" {
		return fmt.Errorf("%w: --cluster-id and --password (the new admin password) are required", errUsage)
	}
	pw := *o.password
	if pw == "" {
		pw = os.Getenv(PasswordEnv)
	}
	d, err := openDeployment(*o.dir, false, nil)
	if err != nil {
		return err
	}
	if err := d.activate(ctx, *o.clusterID, pw); err != nil {
		return err
	}
	return done(e, "cluster "+*o.clusterID+" activated")
}

func keyUsage(keyType string, extractable bool) *hsmv1.KeyUsage {
	switch keyType {
	case "generic-secret":
		return &hsmv1.KeyUsage{Sign: true, Verify: true, Extractable: extractable}
	case "ec":
		return &hsmv1.KeyUsage{Sign: true, Verify: true, Extractable: extractable}
	}
	return &hsmv1.KeyUsage{Encrypt: true, Decrypt: true, Wrap: true, Unwrap: true, Sign: keyType == "rsa", Verify: keyType == "rsa", Extractable: extractable}
}

func parseID(s string) ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: --id must be hex", errUsage)
	}
	return b, nil
}

func runGenerateSymmetric(ctx context.Context, e *env, o *hsmOpts, hsm hsmv1.HsmServiceClient) error {
	if err := need(o, "key-type", "key-size"); err != nil {
		return err
	}
	types := map[string]hsmv1.KeyType{"aes": hsmv1.KeyType_KEY_TYPE_AES, "generic-secret": hsmv1.KeyType_KEY_TYPE_GENERIC_SECRET}
	kt, ok := types[*o.s["key-type"]]
	if !ok {
		return fmt.Errorf("%w: --key-type must be aes or generic-secret", errUsage)
	}
	id, err := parseID(*o.s["id"])
	if err != nil {
		return err
	}
	resp, err := hsm.GenerateSymmetricKey(ctx, &hsmv1.GenerateSymmetricKeyRequest{Type: kt, SizeBits: uint32(*o.u["key-size"]),
		Label: *o.s["label"], Id: id, Usage: keyUsage(*o.s["key-type"], *o.b["extractable"])})
	if err != nil {
		return err
	}
	return e.emit(resp.GetKey(), func(w io.Writer) { printKeys(w, []*hsmv1.KeyAttributes{resp.GetKey()}) })
}

func runGeneratePair(ctx context.Context, e *env, o *hsmOpts, hsm hsmv1.HsmServiceClient) error {
	if err := need(o, "key-type"); err != nil {
		return err
	}
	req := &hsmv1.GenerateKeyPairRequest{Label: *o.s["label"], Usage: keyUsage(*o.s["key-type"], *o.b["extractable"])}
	switch *o.s["key-type"] {
	case "rsa":
		req.Type, req.ModulusBits = hsmv1.KeyType_KEY_TYPE_RSA, uint32(*o.u["modulus-bits"])
	case "ec":
		curves := map[string]hsmv1.Curve{"p256": hsmv1.Curve_CURVE_P256, "p384": hsmv1.Curve_CURVE_P384, "p521": hsmv1.Curve_CURVE_P521}
		c, ok := curves[*o.s["curve"]]
		if !ok {
			return fmt.Errorf("%w: --curve must be p256, p384 or p521", errUsage)
		}
		req.Type, req.Curve = hsmv1.KeyType_KEY_TYPE_EC, c
	default:
		return fmt.Errorf("%w: --key-type must be rsa or ec", errUsage)
	}
	var err error
	if req.Id, err = parseID(*o.s["id"]); err != nil {
		return err
	}
	resp, err := hsm.GenerateKeyPair(ctx, req)
	if err != nil {
		return err
	}
	keys := []*hsmv1.KeyAttributes{resp.GetPublicKey(), resp.GetPrivateKey()}
	return e.emit(keys, func(w io.Writer) { printKeys(w, keys) })
}

func parseWrapMechanism(s string) (hsmv1.WrapMechanism, error) {
	m, ok := map[string]hsmv1.WrapMechanism{"aes-kw": hsmv1.WrapMechanism_WRAP_MECHANISM_AES_KW, "aes-kwp": hsmv1.WrapMechanism_WRAP_MECHANISM_AES_KWP,
		"rsa-oaep": hsmv1.WrapMechanism_WRAP_MECHANISM_RSA_OAEP, "rsa-aes": hsmv1.WrapMechanism_WRAP_MECHANISM_RSA_AES}[s]
	if !ok {
		return 0, fmt.Errorf("%w: --mechanism must be aes-kw, aes-kwp, rsa-oaep or rsa-aes", errUsage)
	}
	return m, nil
}

func runUnwrap(ctx context.Context, e *env, o *hsmOpts, hsm hsmv1.HsmServiceClient) error {
	if err := need(o, "unwrapping-handle", "mechanism", "data", "key-type"); err != nil {
		return err
	}
	mech, err := parseWrapMechanism(*o.s["mechanism"])
	if err != nil {
		return err
	}
	types := map[string]hsmv1.KeyType{"aes": hsmv1.KeyType_KEY_TYPE_AES, "generic-secret": hsmv1.KeyType_KEY_TYPE_GENERIC_SECRET,
		"rsa": hsmv1.KeyType_KEY_TYPE_RSA, "ec": hsmv1.KeyType_KEY_TYPE_EC}
	kt, ok := types[*o.s["key-type"]]
	if !ok {
		return fmt.Errorf("%w: --key-type must be aes, generic-secret, rsa or ec", errUsage)
	}
	data, err := base64.StdEncoding.DecodeString(*o.s["data"])
	if err != nil {
		return fmt.Errorf("%w: --data must be base64", errUsage)
	}
	resp, err := hsm.UnwrapKey(ctx, &hsmv1.UnwrapKeyRequest{UnwrappingHandle: uint64(*o.u["unwrapping-handle"]), Mechanism: mech,
		Wrapped: data, Type: kt, Label: *o.s["label"], Usage: keyUsage(*o.s["key-type"], *o.b["extractable"])})
	if err != nil {
		return err
	}
	return e.emit(resp.GetKey(), func(w io.Writer) { printKeys(w, []*hsmv1.KeyAttributes{resp.GetKey()}) })
}

func printKeys(w io.Writer, keys []*hsmv1.KeyAttributes) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HANDLE\tCLASS\tTYPE\tSIZE\tLABEL\tOWNER\tSHARED WITH\tKCV\tEXTRACTABLE")
	for _, k := range keys {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\t%s\t0x%x\t%v\n", k.GetHandle(),
			strings.ToLower(strings.TrimPrefix(k.GetClass().String(), "KEY_CLASS_")),
			strings.ToLower(strings.TrimPrefix(k.GetType().String(), "KEY_TYPE_")), k.GetSizeBits(), k.GetLabel(), k.GetOwner(),
			strings.Join(k.GetSharedUsers(), ","), k.GetKcv(), k.GetExtractable())
	}
	tw.Flush()
}
