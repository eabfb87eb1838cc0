"""``batchbook aws setup | teardown | doctor | image | prices``: the commands' arguments and what
each runs (``batchbook.cli`` hands ``aws ...`` here)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from batchbook.errors import BatchbookError, ClientError

DEFAULT_REGION_HELP = "AWS region, e.g. us-east-1"


def add_commands(sub: Any) -> None:
    p_aws = sub.add_parser("aws", help="set up, check and take down batchbook on AWS Batch")
    aws = p_aws.add_subparsers(dest="aws_command", required=True)

    setup = aws.add_parser("setup", help="create what a working queue needs (idempotent)")
    setup.add_argument("--region", required=True, help=DEFAULT_REGION_HELP)
    setup.add_argument("--bucket", required=True, help="S3 bucket for payloads and results")
    setup.add_argument("--prefix", default="batchbook", help="key prefix in the bucket")
    setup.add_argument("--name", default="batchbook", help="the queue's name (and the tag)")
    setup.add_argument("--max-vcpus", type=int, default=256)
    setup.add_argument("--min-vcpus", type=int, default=0)
    setup.add_argument(
        "--spot", action="store_true", help="Spot instances (price-capacity optimized)"
    )
    setup.add_argument("--fargate", action="store_true", help="Fargate instead of EC2")
    setup.add_argument("--instance-types", nargs="+", default=["optimal"])
    setup.add_argument("--subnets", nargs="+", default=[])
    setup.add_argument("--security-group-ids", nargs="+", default=[])
    setup.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    setup.add_argument("--profile", default="default", help="batchbook config profile to write")
    setup.add_argument("--aws-profile", default=None, help="AWS credentials profile")

    down = aws.add_parser("teardown", help="remove what setup made (found by its tag)")
    down.add_argument("--region", required=True, help=DEFAULT_REGION_HELP)
    down.add_argument("--bucket", required=True)
    down.add_argument("--name", default="batchbook")
    down.add_argument("--yes", action="store_true", help="do not ask")
    down.add_argument("--dry-run", action="store_true")
    down.add_argument("--delete-bucket", action="store_true", help="also the bucket and its runs")
    down.add_argument("--aws-profile", default=None)

    doctor = aws.add_parser("doctor", help="check a configured setup end to end")
    doctor.add_argument("--profile", default=None, help="batchbook config profile")

    image = aws.add_parser("image", help="a Dockerfile reproducing this Python for the workers")
    image.add_argument("--out", type=Path, default=Path("batchbook-image"))
    image.add_argument("--packages", nargs="*", default=[], help="modules your code imports")
    image.add_argument("--profile", default=None, help="batchbook config profile")
    image.add_argument("--repository", default="batchbook")
    image.add_argument(
        "--push", action="store_true", help="build it with docker and push it to ECR now"
    )

    prices = aws.add_parser("prices", help="the prices estimates use, with their dates")
    prices.add_argument("--region", default="us-east-1", help=DEFAULT_REGION_HELP)
    prices.add_argument(
        "--refresh", action="store_true", help="fetch newer ones (needs AWS credentials)"
    )
    prices.add_argument("--aws-profile", default=None, help="AWS credentials profile")


def run(args: argparse.Namespace) -> int:
    commands = {
        "setup": _setup,
        "teardown": _teardown,
        "doctor": _doctor,
        "image": _image,
        "prices": _prices,
    }
    try:
        return commands[args.aws_command](args)
    except BatchbookError as e:
        print(f"batchbook aws {args.aws_command}: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # what AWS (or botocore, without credentials or a route) said
        from botocore.exceptions import BotoCoreError
        from botocore.exceptions import ClientError as AwsError

        if not isinstance(e, AwsError | BotoCoreError):
            raise
        print(f"batchbook aws {args.aws_command}: AWS answered: {e}", file=sys.stderr)
        return 2


def _prices(args: argparse.Namespace) -> int:
    from batchbook.aws.prices import refresh, show

    if args.refresh:
        print(f"batchbook aws prices: refreshing {args.region} ...", flush=True)
        said = refresh(args.region, args.aws_profile, lambda line: print(line, flush=True))
        for part, what in said.items():
            print(f"  {part}: {what}")
    print("\n".join(show(args.region)))
    return 0


def _setup(args: argparse.Namespace) -> int:
    from batchbook.aws.clients import Aws
    from batchbook.aws.resources import SetupOptions
    from batchbook.aws.setup import Setup

    opts = SetupOptions(
        region=args.region,
        bucket=args.bucket,
        prefix=args.prefix,
        name=args.name,
        max_vcpus=args.max_vcpus,
        min_vcpus=args.min_vcpus,
        spot=args.spot,
        fargate=args.fargate,
        instance_types=tuple(args.instance_types),
        subnets=tuple(args.subnets),
        security_group_ids=tuple(args.security_group_ids),
    )
    Setup(Aws(args.region, args.aws_profile), opts).run(args.dry_run, args.profile)
    return 0


def _teardown(args: argparse.Namespace) -> int:
    from batchbook.aws.clients import Aws
    from batchbook.aws.teardown import find, teardown

    aws = Aws(args.region, args.aws_profile)
    found = find(aws, args.name, args.bucket)
    lines = found.lines(args.bucket, args.delete_bucket)
    if not lines:
        print(f"nothing made by batchbook aws setup {args.name!r} in {args.region}")
        return 0
    print(f"batchbook aws teardown {args.name!r} in {args.region} removes:")
    print("\n".join(f"  {line}" for line in lines))
    if not args.delete_bucket:
        print(f"  (the bucket {args.bucket} and its runs stay: --delete-bucket removes them)")
    if args.dry_run:
        print("dry run: nothing was changed")
        return 0
    if not args.yes:
        if not sys.stdin.isatty():
            print(
                "batchbook aws teardown: not a terminal, so not asking: pass --yes", file=sys.stderr
            )
            return 2
        if input("remove them? [y/N] ").strip().lower() not in ("y", "yes"):
            print("nothing was changed")
            return 1
    teardown(aws, args.name, args.bucket, args.delete_bucket)
    print("done")
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from batchbook.aws.clients import Aws
    from batchbook.aws.config import load_profile
    from batchbook.aws.doctor import check

    profile = load_profile(args.profile)
    findings = check(Aws(profile.region, profile.aws_profile), profile)
    print(f"batchbook aws doctor: queue {profile.queue} in {profile.region}, store {profile.store}")
    for finding in findings:
        print(finding.line())
    problems = [f for f in findings if not f.ok]
    print(f"{len(problems)} problem(s)" if problems else "all good")
    return 1 if problems else 0


def _image(args: argparse.Namespace) -> int:
    from batchbook.aws.clients import Aws
    from batchbook.aws.config import load_profile
    from batchbook.aws.image import MANIFEST, build_commands, docker_available, write

    path, spec = write(args.out, list(args.packages))
    print(f"wrote {path} (Python {spec['python']}, batchbook {spec['batchbook']})")
    profile = load_profile(args.profile)
    aws = Aws(profile.region, profile.aws_profile)
    key = f"{profile.prefix}/{MANIFEST}".lstrip("/")
    commands = build_commands(aws.account(), profile.region, args.repository, args.out)
    spec["image"] = commands[2].split()[3]
    aws.s3.put_object(Bucket=profile.bucket, Key=key, Body=json.dumps(spec).encode())
    print(f"recorded its versions in s3://{profile.bucket}/{key} (doctor compares them)")
    if args.push:
        if not docker_available():
            raise ClientError("--push: docker is not installed here; run the commands below")
        for command in commands:
            print(f"$ {command}")
            if subprocess.run(command, shell=True).returncode:
                raise ClientError(f"--push: `{command}` failed; see its output above")
    else:
        print("build and push it with (or run this again with --push):")
        print("\n".join(f"  {c}" for c in commands))
    print(
        f"then give the runner's job definition that image (aws batch register-job-definition "
        f"with image {spec['image']})"
    )
    return 0
