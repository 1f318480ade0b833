#!/usr/bin/env bash
# The seed workflow with the stock AWS CLI and openssl, as a customer would
# run it against AWS, with only --endpoint-url changed. The HSM-side steps
# (activation, kmsuser) use hsmctl, as they use CloudHSM's CLI on AWS.
#
# Needs: ENDPOINT, DIR (the deployment), HSMCTL, and the AWS credentials in
# the environment (AWS_SHARED_CREDENTIALS_FILE, AWS_PROFILE, AWS_DEFAULT_REGION).
set -euo pipefail
: "${ENDPOINT:?}" "${DIR:?}" "${HSMCTL:?}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
aws() { command aws --endpoint-url "$ENDPOINT" "$@"; }
step() { echo "== $*"; }

step "create a cluster and its first HSM"
cluster=$(aws cloudhsmv2 create-cluster --hsm-type hsm2m.medium \
  --subnet-ids subnet-0a1b2c3d4e5f60001 subnet-0a1b2c3d4e5f60002 --query Cluster.ClusterId --output text)
aws cloudhsmv2 create-hsm --cluster-id "$cluster" --availability-zone us-east-1a > /dev/null
aws cloudhsmv2 describe-clusters --filters clusterIds="$cluster" \
  --query 'Clusters[0].Certificates.ClusterCsr' --output text > "$work/cluster.csr"
grep -q 'BEGIN CERTIFICATE REQUEST' "$work/cluster.csr"

step "sign the CSR with our own CA (openssl) and initialize"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/customerCA.key" \
  -out "$work/customerCA.crt" -days 3652 -subj "/CN=customerCA" 2> /dev/null
openssl x509 -req -days 3652 -in "$work/cluster.csr" -CA "$work/customerCA.crt" -CAkey "$work/customerCA.key" \
  -CAcreateserial -out "$work/cluster.crt" 2> /dev/null
aws cloudhsmv2 initialize-cluster --cluster-id "$cluster" \
  --signed-cert "file://$work/cluster.crt" --trust-anchor "file://$work/customerCA.crt" > /dev/null
state=$(aws cloudhsmv2 describe-clusters --filters clusterIds="$cluster" --query 'Clusters[0].State' --output text)
[ "$state" = INITIALIZED ] || { echo "cluster is $state, not INITIALIZED"; exit 1; }

step "activate, add an HSM in a second AZ, create kmsuser"
"$HSMCTL" cluster activate --dir "$DIR" --cluster-id "$cluster" --password admin-password-1 > /dev/null
aws cloudhsmv2 create-hsm --cluster-id "$cluster" --availability-zone us-east-1b > /dev/null
"$HSMCTL" user create --dir "$DIR" --cluster-id "$cluster" --username admin --role admin --password admin-password-1 \
  --new-username kmsuser --new-role crypto-user --new-password kmsuser-password-1 > /dev/null

step "create and connect a custom key store"
store=$(aws kms create-custom-key-store --custom-key-store-name cli-store --cloud-hsm-cluster-id "$cluster" \
  --trust-anchor-certificate "file://$work/customerCA.crt" --key-store-password kmsuser-password-1 \
  --query CustomKeyStoreId --output text)
aws kms connect-custom-key-store --custom-key-store-id "$store"
for _ in $(seq 1 300); do
  cs=$(aws kms describe-custom-key-stores --custom-key-store-id "$store" --query 'CustomKeyStores[0].ConnectionState' --output text)
  [ "$cs" = CONNECTED ] && break
  [ "$cs" = FAILED ] && { echo "connection FAILED"; exit 1; }
  sleep 0.2
done
[ "$cs" = CONNECTED ] || { echo "store is $cs"; exit 1; }

step "a key in the custom key store: encrypt, decrypt, data key"
key=$(aws kms create-key --origin AWS_CLOUDHSM --custom-key-store-id "$store" --query KeyMetadata.KeyId --output text)
aws kms create-alias --alias-name alias/cli-seed --target-key-id "$key"
aws kms encrypt --key-id alias/cli-seed --plaintext 'hello, HSM' --encryption-context purpose=cli \
  --query CiphertextBlob --output text | base64 -d > "$work/ct.bin"
plain=$(aws kms decrypt --ciphertext-blob "fileb://$work/ct.bin" --encryption-context purpose=cli \
  --query Plaintext --output text | base64 -d)
[ "$plain" = 'hello, HSM' ] || { echo "decrypted '$plain'"; exit 1; }
if aws kms decrypt --ciphertext-blob "fileb://$work/ct.bin" 2> "$work/err.txt" > /dev/null; then
  echo "decrypt without the encryption context succeeded"; exit 1
fi
grep -q InvalidCiphertextException "$work/err.txt"
aws kms generate-data-key --key-id "$key" --key-spec AES_256 --query CiphertextBlob --output text | base64 -d > "$work/dk.bin"
aws kms decrypt --ciphertext-blob "fileb://$work/dk.bin" --query KeyId --output text | grep -q "$key"

step "disconnect: Unavailable; schedule deletion"
aws kms disconnect-custom-key-store --custom-key-store-id "$store"
ks=$(aws kms describe-key --key-id "$key" --query KeyMetadata.KeyState --output text)
[ "$ks" = Unavailable ] || { echo "key is $ks, not Unavailable"; exit 1; }
aws kms schedule-key-deletion --key-id "$key" --pending-window-in-days 7 --query KeyState --output text | grep -q PendingDeletion
echo "seed workflow with the AWS CLI: ok"
