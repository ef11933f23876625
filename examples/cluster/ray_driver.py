"""A Ray driver that runs the shard commands as tasks; Ray only schedules and retries them.

    ray start --head --num-cpus=2                      # or connect to an existing cluster
    python ray_driver.py /shared/people 16 [MODEL]     # every node must see the workspace

Each task runs `embed-shard.sh WORKSPACE COUNT INDEX`, the same command Slurm and Kubernetes
run. A task that fails is retried (max_retries) and does only its missing images. Once every
shard is done, one `curate embed` on the workspace merges their parts.
"""
import os
import subprocess
import sys

import ray

HERE = os.path.dirname(os.path.abspath(__file__))


# retry_exceptions: a shard whose command failed (killed, a store that stopped answering) is an
# application error to Ray, which retries only crashed workers unless told.
@ray.remote(num_cpus=1, max_retries=3, retry_exceptions=True)
def shard(workspace, count, index, model):
    done = subprocess.run(
        [os.path.join(HERE, "embed-shard.sh"), workspace, str(count), str(index)] + ([model] if model else []),
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"shard {index}/{count} failed:\n{done.stderr}")
    return done.stdout.strip()


def main():
    workspace, count = os.path.abspath(sys.argv[1]), int(sys.argv[2])
    model = sys.argv[3] if len(sys.argv) > 3 else None
    ray.init(address=os.environ.get("RAY_ADDRESS", "auto"))
    for line in ray.get([shard.remote(workspace, count, i, model) for i in range(count)]):
        print(line)
    merged = subprocess.run(
        [os.environ.get("CURATE", "curate"), "-C", workspace, "embed"] + (["--model", model] if model else []),
        check=True,
        capture_output=True,
        text=True,
    )
    print(merged.stdout.strip())


if __name__ == "__main__":
    main()
