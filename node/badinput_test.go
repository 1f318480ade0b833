package node_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	"github.com/hsmsim/hsmsim/node"
	"github.com/hsmsim/hsmsim/node/nodetest"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

// Every RPC refuses missing, oversize and malformed fields with
// InvalidArgument and a message that names the problem and carries no
// secret, and the HSM keeps serving. The calls go to a follower, so the
// refusals that only the key database can make travel back through the
// leader.
func TestBadInput(t *testing.T) {
	const (
		marker      = "TOP-SECRET-PLAINTEXT-MARKER"
		shortPW     = "short1"
		longPW      = "a-forty-character-password-0123456789xyz"
		garbageHint = "garbage-wrapped-key"
	)
	c := nodetest.New(t, 3)
	f := c.Followers()[0].Index
	c.CreateCryptoUser(f, "alice", userPassword)
	alice := loginCU(t, c, f, "alice", userPassword)
	admin := loginAdmin(t, c, f)
	cl, ctl := alice.cl, c.Control(f)

	aesResp, err := cl.GenerateSymmetricKey(alice.ctx, &hsmv1.GenerateSymmetricKeyRequest{Type: hsmv1.KeyType_KEY_TYPE_AES, SizeBits: 256,
		Usage: &hsmv1.KeyUsage{Extractable: true, Encrypt: true, Decrypt: true, Wrap: true, Unwrap: true}})
	require.NoError(t, err)
	aes := aesResp.GetKey().GetHandle()
	ec, err := cl.GenerateKeyPair(alice.ctx, &hsmv1.GenerateKeyPairRequest{Type: hsmv1.KeyType_KEY_TYPE_EC, Curve: hsmv1.Curve_CURVE_P256,
		Usage: &hsmv1.KeyUsage{Sign: true, Verify: true}})
	require.NoError(t, err)
	ecPriv := ec.GetPrivateKey().GetHandle()
	ct := alice.encrypt(t, aes, []byte(marker))
	digest20 := bytes.Repeat([]byte{7}, 20)

	// Nothing secret may show in a message: passwords, session tokens,
	// plaintext.
	secrets := []string{marker, userPassword, nodetest.AdminPassword, shortPW, longPW}
	for _, ctx := range []context.Context{alice.ctx, admin.ctx} {
		md, _ := metadata.FromOutgoingContext(ctx)
		secrets = append(secrets, md.Get(node.MetadataSession)...)
	}

	login := func(req *hsmv1.LoginRequest) func() error {
		return func() error { _, err := cl.Login(context.Background(), req); return err }
	}
	createUser := func(req *hsmv1.CreateUserRequest) func() error {
		return func() error { _, err := cl.CreateUser(admin.ctx, req); return err }
	}
	genSym := func(req *hsmv1.GenerateSymmetricKeyRequest) func() error {
		return func() error { _, err := cl.GenerateSymmetricKey(alice.ctx, req); return err }
	}
	genPair := func(req *hsmv1.GenerateKeyPairRequest) func() error {
		return func() error { _, err := cl.GenerateKeyPair(alice.ctx, req); return err }
	}
	encrypt := func(req *hsmv1.EncryptRequest) func() error {
		return func() error { _, err := cl.Encrypt(alice.ctx, req); return err }
	}
	decrypt := func(req *hsmv1.DecryptRequest) func() error {
		return func() error { _, err := cl.Decrypt(alice.ctx, req); return err }
	}
	unwrap := func(req *hsmv1.UnwrapKeyRequest) func() error {
		return func() error { _, err := cl.UnwrapKey(alice.ctx, req); return err }
	}
	random := func(n uint32) func() error {
		return func() error {
			_, err := cl.GenerateRandom(alice.ctx, &hsmv1.GenerateRandomRequest{Length: n})
			return err
		}
	}
	admit := func(req *hsmv1.AdmitMemberRequest) func() error {
		return func() error { _, err := ctl.AdmitMember(context.Background(), req); return err }
	}
	cu := hsmv1.Role_ROLE_CRYPTO_USER
	validAdmit := func(mod func(*hsmv1.AdmitMemberRequest)) *hsmv1.AdmitMemberRequest {
		r := &hsmv1.AdmitMemberRequest{NodeId: "hsm-9", Az: "us-east-1a", RaftAddress: "127.0.0.1:1", ApiAddress: "127.0.0.1:2",
			DeviceCertSha256: bytes.Repeat([]byte{1}, 32)}
		mod(r)
		return r
	}

	tests := []struct {
		name string
		call func() error
		want codes.Code // InvalidArgument when unset
	}{
		{"login empty username", login(&hsmv1.LoginRequest{Password: userPassword, Role: cu}), 0},
		{"login empty password", login(&hsmv1.LoginRequest{Username: "alice", Role: cu}), 0},
		{"login role unspecified", login(&hsmv1.LoginRequest{Username: "alice", Password: userPassword}), 0},
		{"login unknown role", login(&hsmv1.LoginRequest{Username: "alice", Password: userPassword, Role: 42}), 0},
		{"login 2 KiB username", login(&hsmv1.LoginRequest{Username: strings.Repeat("u", 2048), Password: userPassword, Role: cu}), 0},
		{"login 2 KiB password", login(&hsmv1.LoginRequest{Username: "alice", Password: strings.Repeat(userPassword, 200), Role: cu}), 0},

		{"create user role unspecified", createUser(&hsmv1.CreateUserRequest{Username: "erin", Password: userPassword}), 0},
		{"create user appliance role", createUser(&hsmv1.CreateUserRequest{Username: "erin", Role: hsmv1.Role_ROLE_APPLIANCE, Password: userPassword}), 0},
		{"create user unknown role", createUser(&hsmv1.CreateUserRequest{Username: "erin", Role: 42, Password: userPassword}), 0},
		{"create user short password", createUser(&hsmv1.CreateUserRequest{Username: "erin", Role: cu, Password: shortPW}), 0},
		{"create user 40-char password", createUser(&hsmv1.CreateUserRequest{Username: "erin", Role: cu, Password: longPW}), 0},
		{"create user empty username", createUser(&hsmv1.CreateUserRequest{Role: cu, Password: userPassword}), 0},
		{"create user 32-char username", createUser(&hsmv1.CreateUserRequest{Username: strings.Repeat("e", 32), Role: cu, Password: userPassword}), 0},
		{"create user invalid characters", createUser(&hsmv1.CreateUserRequest{Username: "erin smith!", Role: cu, Password: userPassword}), 0},
		{"create user non-ASCII username", createUser(&hsmv1.CreateUserRequest{Username: "érin", Role: cu, Password: userPassword}), 0},
		{"change password short", func() error {
			_, err := cl.ChangePassword(admin.ctx, &hsmv1.ChangePasswordRequest{Username: "alice", NewPassword: shortPW})
			return err
		}, 0},
		{"change password no username", func() error {
			_, err := cl.ChangePassword(admin.ctx, &hsmv1.ChangePasswordRequest{NewPassword: userPassword})
			return err
		}, 0},
		{"delete user no username", func() error {
			_, err := cl.DeleteUser(admin.ctx, &hsmv1.DeleteUserRequest{})
			return err
		}, 0},

		{"symmetric key type unspecified", genSym(&hsmv1.GenerateSymmetricKeyRequest{SizeBits: 256}), 0},
		{"symmetric key of type RSA", genSym(&hsmv1.GenerateSymmetricKeyRequest{Type: hsmv1.KeyType_KEY_TYPE_RSA, SizeBits: 2048}), 0},
		{"AES key of 100 bits", genSym(&hsmv1.GenerateSymmetricKeyRequest{Type: hsmv1.KeyType_KEY_TYPE_AES, SizeBits: 100}), 0},
		{"generic secret of 129 bits", genSym(&hsmv1.GenerateSymmetricKeyRequest{Type: hsmv1.KeyType_KEY_TYPE_GENERIC_SECRET, SizeBits: 129}), 0},
		{"generic secret of 8192 bits", genSym(&hsmv1.GenerateSymmetricKeyRequest{Type: hsmv1.KeyType_KEY_TYPE_GENERIC_SECRET, SizeBits: 8192}), 0},
		{"symmetric key 200-char label", genSym(&hsmv1.GenerateSymmetricKeyRequest{Type: hsmv1.KeyType_KEY_TYPE_AES, SizeBits: 256, Label: strings.Repeat("l", 200)}), 0},
		{"symmetric key 200-byte id", genSym(&hsmv1.GenerateSymmetricKeyRequest{Type: hsmv1.KeyType_KEY_TYPE_AES, SizeBits: 256, Id: make([]byte, 200)}), 0},

		{"RSA modulus of 1024 bits", genPair(&hsmv1.GenerateKeyPairRequest{Type: hsmv1.KeyType_KEY_TYPE_RSA, ModulusBits: 1024}), 0},
		{"RSA key with a curve", genPair(&hsmv1.GenerateKeyPairRequest{Type: hsmv1.KeyType_KEY_TYPE_RSA, ModulusBits: 2048, Curve: hsmv1.Curve_CURVE_P256}), 0},
		{"EC curve unspecified", genPair(&hsmv1.GenerateKeyPairRequest{Type: hsmv1.KeyType_KEY_TYPE_EC}), 0},
		{"EC unknown curve", genPair(&hsmv1.GenerateKeyPairRequest{Type: hsmv1.KeyType_KEY_TYPE_EC, Curve: 42}), 0},
		{"key pair of type AES", genPair(&hsmv1.GenerateKeyPairRequest{Type: hsmv1.KeyType_KEY_TYPE_AES}), 0},

		{"encrypt handle 0", encrypt(&hsmv1.EncryptRequest{Mechanism: gcm, Plaintext: []byte(marker)}), 0},
		{"encrypt mechanism unspecified", encrypt(&hsmv1.EncryptRequest{Handle: aes, Plaintext: []byte(marker)}), 0},
		{"encrypt 65 KiB plaintext", encrypt(&hsmv1.EncryptRequest{Handle: aes, Mechanism: gcm, Plaintext: bytes.Repeat([]byte(marker), 65<<10/len(marker)+1)}), 0},
		{"encrypt RSA-OAEP with an AES key", encrypt(&hsmv1.EncryptRequest{Handle: aes, Mechanism: hsmv1.EncryptionMechanism_ENCRYPTION_MECHANISM_RSA_OAEP, Plaintext: []byte(marker)}), 0},
		{"decrypt handle 0", decrypt(&hsmv1.DecryptRequest{Mechanism: gcm, Ciphertext: ct, Aad: []byte("aad")}), 0},
		{"decrypt mechanism unspecified", decrypt(&hsmv1.DecryptRequest{Handle: aes, Ciphertext: ct, Aad: []byte("aad")}), 0},
		{"decrypt truncated ciphertext", decrypt(&hsmv1.DecryptRequest{Handle: aes, Mechanism: gcm, Ciphertext: ct[:10], Aad: []byte("aad")}), 0},
		{"decrypt ciphertext missing its tag", decrypt(&hsmv1.DecryptRequest{Handle: aes, Mechanism: gcm, Ciphertext: ct[:len(ct)-16], Aad: []byte("aad")}), 0},
		{"decrypt with the wrong aad", decrypt(&hsmv1.DecryptRequest{Handle: aes, Mechanism: gcm, Ciphertext: ct, Aad: []byte("other")}), 0},

		{"sign digest of the wrong size", func() error {
			_, err := cl.Sign(alice.ctx, &hsmv1.SignRequest{Handle: ecPriv, Mechanism: hsmv1.SignatureMechanism_SIGNATURE_MECHANISM_ECDSA,
				Hash: hsmv1.Hash_HASH_SHA256, Message: digest20, IsDigest: true})
			return err
		}, 0},
		{"sign with SHA-1", func() error {
			_, err := cl.Sign(alice.ctx, &hsmv1.SignRequest{Handle: ecPriv, Mechanism: hsmv1.SignatureMechanism_SIGNATURE_MECHANISM_ECDSA,
				Hash: hsmv1.Hash_HASH_SHA1, Message: []byte("m")})
			return err
		}, 0},
		{"sign mechanism unspecified", func() error {
			_, err := cl.Sign(alice.ctx, &hsmv1.SignRequest{Handle: ecPriv, Hash: hsmv1.Hash_HASH_SHA256, Message: []byte("m")})
			return err
		}, 0},
		{"sign RSA-PSS with an EC key", func() error {
			_, err := cl.Sign(alice.ctx, &hsmv1.SignRequest{Handle: ecPriv, Mechanism: hsmv1.SignatureMechanism_SIGNATURE_MECHANISM_RSA_PSS,
				Hash: hsmv1.Hash_HASH_SHA256, Message: []byte("m")})
			return err
		}, 0},
		{"verify digest of the wrong size", func() error {
			_, err := cl.Verify(alice.ctx, &hsmv1.VerifyRequest{Handle: ecPriv, Mechanism: hsmv1.SignatureMechanism_SIGNATURE_MECHANISM_ECDSA,
				Hash: hsmv1.Hash_HASH_SHA256, Message: digest20, IsDigest: true, Signature: []byte("sig")})
			return err
		}, 0},
		{"MAC with an AES key", func() error {
			_, err := cl.GenerateMac(alice.ctx, &hsmv1.GenerateMacRequest{Handle: aes, Hash: hsmv1.Hash_HASH_SHA256, Message: []byte(marker)})
			return err
		}, 0},
		{"verify MAC with an EC key", func() error {
			_, err := cl.VerifyMac(alice.ctx, &hsmv1.VerifyMacRequest{Handle: ecPriv, Hash: hsmv1.Hash_HASH_SHA256, Message: []byte("m"), Mac: []byte("mac")})
			return err
		}, 0},

		{"wrap mechanism unspecified", func() error {
			_, err := cl.WrapKey(alice.ctx, &hsmv1.WrapKeyRequest{WrappingHandle: aes, KeyHandle: aes})
			return err
		}, 0},
		{"wrap key handle 0", func() error {
			_, err := cl.WrapKey(alice.ctx, &hsmv1.WrapKeyRequest{WrappingHandle: aes, Mechanism: hsmv1.WrapMechanism_WRAP_MECHANISM_AES_KWP})
			return err
		}, 0},
		{"unwrap garbage", unwrap(&hsmv1.UnwrapKeyRequest{UnwrappingHandle: aes, Mechanism: hsmv1.WrapMechanism_WRAP_MECHANISM_AES_KWP,
			Wrapped: []byte(garbageHint + "-0123456789abcdef"), Type: hsmv1.KeyType_KEY_TYPE_AES}), 0},
		{"unwrap garbage with AES-KW", unwrap(&hsmv1.UnwrapKeyRequest{UnwrappingHandle: aes, Mechanism: hsmv1.WrapMechanism_WRAP_MECHANISM_AES_KW,
			Wrapped: bytes.Repeat([]byte{0xa6}, 40), Type: hsmv1.KeyType_KEY_TYPE_AES}), 0},
		{"unwrap nothing", unwrap(&hsmv1.UnwrapKeyRequest{UnwrappingHandle: aes, Mechanism: hsmv1.WrapMechanism_WRAP_MECHANISM_AES_KWP,
			Type: hsmv1.KeyType_KEY_TYPE_AES}), 0},
		{"unwrap type unspecified", unwrap(&hsmv1.UnwrapKeyRequest{UnwrappingHandle: aes, Mechanism: hsmv1.WrapMechanism_WRAP_MECHANISM_AES_KWP,
			Wrapped: bytes.Repeat([]byte{1}, 40)}), 0},
		{"unwrap mechanism unspecified", unwrap(&hsmv1.UnwrapKeyRequest{UnwrappingHandle: aes, Wrapped: bytes.Repeat([]byte{1}, 40),
			Type: hsmv1.KeyType_KEY_TYPE_AES}), 0},

		{"random of 0 bytes", random(0), 0},
		{"random of 5000 bytes", random(5000), 0},

		{"set attribute without an attribute", func() error {
			_, err := cl.SetAttribute(alice.ctx, &hsmv1.SetAttributeRequest{Handle: aes})
			return err
		}, 0},
		{"set attribute handle 0", func() error {
			_, err := cl.SetAttribute(alice.ctx, &hsmv1.SetAttributeRequest{Attribute: &hsmv1.SetAttributeRequest_Label{Label: "x"}})
			return err
		}, 0},
		{"set a 200-char label", func() error {
			_, err := cl.SetAttribute(alice.ctx, &hsmv1.SetAttributeRequest{Handle: aes, Attribute: &hsmv1.SetAttributeRequest_Label{Label: strings.Repeat("l", 200)}})
			return err
		}, 0},
		{"share without a user", func() error {
			_, err := cl.ShareKey(alice.ctx, &hsmv1.ShareKeyRequest{Handle: aes})
			return err
		}, 0},
		{"delete key handle 0", func() error {
			_, err := cl.DeleteKey(alice.ctx, &hsmv1.DeleteKeyRequest{})
			return err
		}, 0},
		{"get attributes handle 0", func() error {
			_, err := cl.GetAttributes(alice.ctx, &hsmv1.GetAttributesRequest{})
			return err
		}, 0},

		{"admit member short fingerprint", admit(validAdmit(func(r *hsmv1.AdmitMemberRequest) { r.DeviceCertSha256 = r.DeviceCertSha256[:20] })), 0},
		{"admit member without node id", admit(validAdmit(func(r *hsmv1.AdmitMemberRequest) { r.NodeId = "" })), 0},
		{"admit member without addresses", admit(validAdmit(func(r *hsmv1.AdmitMemberRequest) { r.RaftAddress = "" })), 0},
		{"fault without a peer", func() error {
			_, err := ctl.SetFaults(context.Background(), &hsmv1.SetFaultsRequest{Faults: []*hsmv1.LinkFault{{Blocked: true}}})
			return err
		}, 0},
		{"fault with a 70 s delay", func() error {
			_, err := ctl.SetFaults(context.Background(), &hsmv1.SetFaultsRequest{Faults: []*hsmv1.LinkFault{{Peer: "127.0.0.1:1", DelayMs: 70_000}}})
			return err
		}, 0},

		{"no session", func() error {
			_, err := cl.Encrypt(context.Background(), &hsmv1.EncryptRequest{Handle: aes, Mechanism: gcm, Plaintext: []byte(marker)})
			return err
		}, codes.Unauthenticated},
		{"unknown session", func() error {
			ctx := metadata.AppendToOutgoingContext(context.Background(), node.MetadataSession, strings.Repeat("0", 64))
			_, err := cl.Encrypt(ctx, &hsmv1.EncryptRequest{Handle: aes, Mechanism: gcm, Plaintext: []byte(marker)})
			return err
		}, codes.Unauthenticated},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.want
			if want == codes.OK {
				want = codes.InvalidArgument
			}
			st := requireCode(t, tc.call(), want)
			t.Logf("%v: %s", st.Code(), st.Message())
			require.NotEmpty(t, st.Message())
			for _, s := range secrets {
				require.NotContains(t, st.Message(), s, "the message leaks a secret")
			}
			require.NotContains(t, st.Message(), garbageHint)

			// The HSM keeps serving, sessions included.
			resp, err := cl.GenerateRandom(alice.ctx, &hsmv1.GenerateRandomRequest{Length: 16})
			require.NoError(t, err)
			require.Len(t, resp.GetRandom(), 16)
		})
	}

	// Nothing a refused call asked for happened.
	require.Equal(t, []uint64{aes, ecPriv, ec.GetPublicKey().GetHandle()}, alice.handles(t))
	users, err := admin.cl.ListUsers(admin.ctx, &hsmv1.ListUsersRequest{})
	require.NoError(t, err)
	require.Len(t, users.GetUsers(), 2, "only admin and alice")
	require.Equal(t, []byte(marker), alice.decrypt(t, aes, ct))
}
