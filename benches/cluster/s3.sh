# Sourced by the scripts beside it: a moto S3 server on 127.0.0.1 (from the test venv) holding
# the example's images under s3://photos/people/, with the AWS_* variables curate reads set.
# Expects $venv and $work; kills the server on exit.
start_s3() {
    [ -x "$venv/bin/moto_server" ] || "$venv/bin/pip" install -q "moto[server]==5.1.22"
    local port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >/dev/null 2>&1 &
    moto=$!
    export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_ALLOW_HTTP=true AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
    for _ in $(seq 50); do (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.2; done
    "$venv/bin/python" - "$repo/examples/people/media" <<'PY'
import os, sys, boto3
s3 = boto3.client("s3")
s3.create_bucket(Bucket="photos")
root = sys.argv[1]
for d, _, fs in os.walk(root):
    for f in fs:
        p = os.path.join(d, f)
        s3.upload_file(p, "photos", "people/" + os.path.relpath(p, root))
PY
}

# A workspace in $1 whose manifest will be the example's (`import samples.csv`), with its images
# read from local disk ($2 = local) or from the bucket ($2 = s3: the table's paths are URLs).
make_ws() {
    mkdir -p "$1"
    sed "s|\"models/|\"$repo/examples/people/models/|g" "$repo/examples/people/curate.toml" > "$1/curate.toml"
    if [ "$2" = s3 ]; then
        sed 's|,media/|,s3://photos/people/|' "$repo/examples/people/samples.csv" > "$1/samples.csv"
    else
        cp "$repo/examples/people/samples.csv" "$1/samples.csv"
        ln -s "$repo/examples/people/media" "$1/media"
    fi
}
