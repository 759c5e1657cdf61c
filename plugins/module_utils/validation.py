# Copyright: argoeks maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Validation rules for platform settings, shared by the preflight module and its tests.

Each rule takes (value, check) and returns None when the value is fine, or a sentence saying what
is wrong and what is accepted. The caller prefixes the variable name.
"""

import ipaddress
import re

AWS_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}$")
BUCKET_CHARS = re.compile(r"^[a-z0-9.-]+$")
BUCKET_EDGES = re.compile(r"^[a-z0-9].*[a-z0-9]$")
IP_LIKE = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")
# Reserved by S3 for access points, Object Lambda, directory and table buckets.
BUCKET_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
BUCKET_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
DYNAMODB_TABLE = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")
EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
VERSION = re.compile(r"^\d+\.\d+(\.\d+)?$")
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,99}$")
# A Hugging Face model id: organisation/name.
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
# EC2 instance families with NVIDIA GPUs that the NVIDIA device plugin and DCGM exporter support
# (g5g is Arm with T4G, gr6 the 1:8 memory variant of g6).
GPU_INSTANCE_FAMILIES = ("g4dn", "g5", "g5g", "g6", "g6e", "gr6", "p3", "p3dn", "p4d", "p4de", "p5", "p5e", "p5en")
INSTANCE_TYPE = re.compile(r"^([a-z][a-z0-9-]*)\.([0-9]*[a-z]+[0-9]*)$")
LOWER_NAME = re.compile(r"^[a-z][a-z0-9-]{0,19}$")
URL = re.compile(r"^https?://[^\s/:]+(:\d{1,5})?(/\S*)?$")
WEBHOOK_URL = re.compile(r"^https://[A-Za-z0-9.-]+(:\d{1,5})?/\S+$")
# Prometheus durations and byte sizes (--storage.tsdb.retention.time / .size).
# Units in descending order, each at most once (as Prometheus parses them).
DURATION = re.compile(r"^(\d+y)?(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?$")
BYTE_SIZE = re.compile(r"^\d+(\.\d+)?(B|[KMGTPE]i?B)$")

BUCKET_ACCEPTED = "3-63 characters of a-z, 0-9, '.' and '-', starting and ending with a letter or digit"


def s3_bucket_name(value, check):
    if not isinstance(value, str):
        return f"must be a string ({BUCKET_ACCEPTED})"
    problems = []
    if not 3 <= len(value) <= 63:
        problems.append(f"is {len(value)} characters long")
    if not BUCKET_CHARS.match(value):
        problems.append("contains characters other than lowercase letters, digits, '.' and '-'")
    if not BUCKET_EDGES.match(value):
        problems.append("does not start and end with a lowercase letter or digit")
    if ".." in value:
        problems.append("contains '..'")
    if IP_LIKE.match(value):
        problems.append("looks like an IP address")
    if value.startswith(BUCKET_RESERVED_PREFIXES) or value.endswith(BUCKET_RESERVED_SUFFIXES):
        problems.append("uses a prefix or suffix S3 reserves")
    if problems:
        return f"{value!r} is not a valid S3 bucket name: it " + ", ".join(problems) + f" (accepted: {BUCKET_ACCEPTED})"
    return None


def dynamodb_table_name(value, check):
    if isinstance(value, str) and DYNAMODB_TABLE.match(value):
        return None
    return f"{value!r} is not a valid DynamoDB table name (accepted: 3-255 characters of A-Z, a-z, 0-9, '_', '-', '.')"


def aws_region(value, check):
    if isinstance(value, str) and AWS_REGION.match(value):
        return None
    return f"{value!r} is not an AWS region name (accepted: names like us-east-1, eu-west-2, ap-southeast-1)"


def email_list(value, check):
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        return f"{value!r} is not a list of email addresses (accepted: at least one address like name@example.com)"
    bad = [v for v in value if not isinstance(v, str) or not EMAIL.match(v)]
    if bad:
        listed = ", ".join(repr(b) for b in bad)
        verb = "is not an email address" if len(bad) == 1 else "are not email addresses"
        return f"{listed} {verb} (accepted: addresses like name@example.com)"
    return None


def number(value, check):
    minimum, maximum = check.get("min"), check.get("max")
    accepted = (
        "a number"
        + (f" >= {minimum}" if minimum is not None else "")
        + (f" <= {maximum}" if maximum is not None else "")
    )
    if isinstance(value, bool):
        return f"{value!r} is not a number (accepted: {accepted})"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return f"{value!r} is not a number (accepted: {accepted})"
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        return f"{value!r} is out of range (accepted: {accepted})"
    return None


def integer(value, check):
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and value.isdigit())):
        return number(value, check) or f"{value!r} is not a whole number"
    return number(value, check)


def port(value, check):
    return integer(value, dict(check, min=check.get("min", 1), max=check.get("max", 65535)))


def choice(value, check):
    choices = check.get("choices") or []
    if value in choices:
        return None
    return f"{value!r} is not accepted (accepted: {', '.join(str(c) for c in choices)})"


def cidr(value, check):
    min_prefix, max_prefix = check.get("min", 16), check.get("max", 28)
    accepted = f"an IPv4 network like 10.0.0.0/16 with a prefix from /{min_prefix} to /{max_prefix}"
    try:
        network = ipaddress.IPv4Network(str(value), strict=True)
    except ValueError as e:
        return f"{value!r} is not a valid CIDR block: {e} (accepted: {accepted})"
    if "/" not in str(value) or not min_prefix <= network.prefixlen <= max_prefix:
        return f"{value!r} has prefix /{network.prefixlen} (accepted: {accepted})"
    return None


def cidr_list(value, check):
    """Subnet CIDRs: valid, inside `within`, one per AZ (`count`), not overlapping each other or `disjoint_from`."""
    if not isinstance(value, list) or not value:
        return f"{value!r} is not a list of CIDR blocks (accepted: a list like ['10.0.0.0/20', '10.0.16.0/20'])"
    problems, networks = [], []
    for item in value:
        try:
            networks.append(ipaddress.IPv4Network(str(item), strict=True))
        except ValueError as e:
            problems.append(f"{item!r} is not a valid CIDR block ({e})")
    within = check.get("within")
    if within:
        try:
            parent = ipaddress.IPv4Network(str(within), strict=False)
            problems += [f"{n} is outside the VPC CIDR {parent}" for n in networks if not n.subnet_of(parent)]
        except ValueError:
            pass  # the VPC CIDR has its own check
    for i, a in enumerate(networks):
        problems += [f"{a} overlaps {b}" for b in networks[i + 1 :] if a.overlaps(b)]
    others = []
    for item in check.get("disjoint_from") or []:
        try:
            others.append(ipaddress.IPv4Network(str(item), strict=True))
        except ValueError:
            continue  # reported by that variable's own check
    problems += [f"{a} overlaps {b}" for a in networks for b in others if a.overlaps(b)]
    count = check.get("count")
    if count is not None and len(value) != int(count):
        problems.append(f"has {len(value)} entries but there are {count} availability zones (one subnet per zone)")
    if problems:
        return (
            "; ".join(problems) + " (accepted: non-overlapping subnets inside the VPC CIDR, one per availability zone)"
        )
    return None


def az_list(value, check):
    """Availability zones of one region, at least `min` (default 2), no duplicates."""
    minimum = int(check.get("min", 2))
    region = check.get("region") or ""
    accepted = f"at least {minimum} distinct zones of {region or 'the region'}, like {region or 'us-east-1'}a"
    if not isinstance(value, list):
        return f"{value!r} is not a list (accepted: {accepted})"
    problems = []
    if len(set(value)) < minimum:
        problems.append(f"has {len(set(value))} distinct zone(s)")
    bad = (
        [z for z in value if not (isinstance(z, str) and re.match(rf"^{re.escape(region)}[a-z]$", z))] if region else []
    )
    if bad:
        problems.append(f"{', '.join(repr(z) for z in bad)} {'is' if len(bad) == 1 else 'are'} not a zone of {region}")
    if problems:
        return f"{value!r} " + " and ".join(problems) + f" (accepted: {accepted})"
    return None


def version(value, check):
    text = str(value)
    if not VERSION.match(text):
        return f"{value!r} is not a version (accepted: numbers like 1.32)"
    minimum = check.get("min")
    if minimum is not None and _version_tuple(text) < _version_tuple(str(minimum)):
        return f"{value!r} is older than supported (accepted: {minimum} or newer)"
    return None


def _version_tuple(text):
    return tuple(int(part) for part in text.split("."))


def name(value, check):
    if isinstance(value, str) and NAME.match(value):
        return None
    return f"{value!r} is not a valid name (accepted: a letter, then up to 99 letters, digits or '-')"


def model_name(value, check):
    if isinstance(value, str) and MODEL_NAME.match(value) and ".." not in value:
        return None
    return (
        f"{value!r} is not a model name "
        "(accepted: organisation/name as on Hugging Face, e.g. mistralai/Mistral-7B-Instruct-v0.2)"
    )


def gpu_instance_types(value, check):
    if not isinstance(value, list) or not value:
        return f"{value!r} is not a list of instance types (e.g. [g5.xlarge])"
    for item in value:
        match = INSTANCE_TYPE.match(item) if isinstance(item, str) else None
        if match is None:
            return f"{item!r} is not an EC2 instance type (family.size, e.g. g5.xlarge)"
        if match.group(1) not in GPU_INSTANCE_FAMILIES:
            return (
                f"{item!r} is not of an NVIDIA GPU instance family "
                f"(accepted families: {', '.join(GPU_INSTANCE_FAMILIES)})"
            )
    return None


def lower_name(value, check):
    if isinstance(value, str) and LOWER_NAME.match(value) and not value.endswith("-"):
        return None
    return f"{value!r} is not a valid name part (accepted: a lowercase letter, then up to 19 of a-z, 0-9, '-')"


def ip_address(value, check):
    try:
        ipaddress.ip_address(str(value))
    except ValueError:
        return f"{value!r} is not an IP address (accepted: an address like 127.0.0.1)"
    return None


def url(value, check):
    if value in ("", None) and check.get("allow_empty", True):
        return None
    if isinstance(value, str) and URL.match(value):
        return None
    return f"{value!r} is not an http(s) URL (accepted: http://host:port, or empty)"


def webhook_url(value, check):
    """A secret URL: the message never repeats the value."""
    if value in ("", None):
        return None
    if isinstance(value, str) and WEBHOOK_URL.match(value):
        return None
    reason = "uses plain http" if isinstance(value, str) and value.startswith("http://") else "is not an https URL"
    accepted = "an https webhook URL like https://hooks.slack.com/services/T000/B000/XXXX, or empty"
    return f"the value {reason} (accepted: {accepted})"


def alert_receivers(value, check):
    """Email receivers of alerts; with alerting enabled there must be at least one receiver of any kind."""
    if value in ("", None):
        value = []
    if isinstance(value, list) and not value:
        enabled = check.get("enabled")
        if (enabled is None or _truthy(enabled)) and not int(check.get("others") or 0):
            return (
                "is empty and no other receiver (Slack webhook) is set while alerting is enabled "
                "(accepted: at least one email address or a Slack webhook URL, or disable alerting)"
            )
        return None
    return email_list(value, check)


LOOPBACK_HOSTS = ("localhost", "127.", "::1", "[::1]")


def smtp_relay(value, check):
    """A mail relay as host:port; with `enabled` (email receivers on eks) not a loopback address, which inside
    the Alertmanager pod is the pod itself, where no mail server listens."""
    host, _, port_text = str(value).rpartition(":")
    if not host or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        return f"{value!r} is not host:port (accepted: your mail relay, e.g. email-smtp.us-east-1.amazonaws.com:587)"
    if _truthy(check.get("enabled", False)) and host.lower().startswith(LOOPBACK_HOSTS):
        return (
            f"{value!r} is the Alertmanager pod itself on eks, where no mail server listens, so alert mail is never "
            "sent (accepted: your mail relay as host:port, e.g. email-smtp.us-east-1.amazonaws.com:587)"
        )
    return None


def restricted_cidrs(value, check):
    """CIDRs allowed to reach a public endpoint; with `enabled` (the endpoint is public) none may be the whole
    internet."""
    if not isinstance(value, list) or not value:
        return "is not a non-empty list of CIDRs (accepted: your networks, e.g. [203.0.113.0/24])"
    for item in value:
        try:
            network = ipaddress.ip_network(str(item), strict=False)
        except ValueError:
            return f"{item!r} is not a CIDR (accepted: your networks, e.g. [203.0.113.0/24])"
        if _truthy(check.get("enabled", False)) and network.prefixlen == 0:
            return (
                f"{item} opens the cluster's public API endpoint to the whole internet (accepted: your networks' "
                "CIDRs, or eks_cluster_endpoint_public_access: false to reach the API from inside the VPC only)"
            )
    return None


def _truthy(value):
    return value in (True, "true", "True", "yes", "1", 1)


def duration(value, check):
    if isinstance(value, str) and value and DURATION.match(value):
        return None
    return f"{value!r} is not a duration (accepted: a number with a unit ms, s, m, h, d, w or y, like 15d or 12h)"


def byte_size(value, check):
    if value in ("", None) or (isinstance(value, str) and BYTE_SIZE.match(value)):
        return None
    accepted = "a number with a unit B, KB, MB, GB, TB, PB or EB (or KiB, MiB, ...), like 5GB, or empty"
    return f"{value!r} is not a size (accepted: {accepted})"


GLUE_NAME = re.compile(r"^[a-z0-9_]{1,255}$")
GLUE_CRON = re.compile(r"^cron\(\s*\S+(\s+\S+){5}\s*\)$")


def glue_name(value, check):
    if isinstance(value, str) and GLUE_NAME.match(value):
        return None
    return f"{value!r} is not a Glue database name (accepted: 1-255 lowercase letters, digits and '_', like mlops_dev)"


def glue_schedules(value, check):
    """A mapping of names to Glue cron expressions (six fields) or '' for on demand."""
    if not isinstance(value, dict):
        return f"{value!r} is not a mapping of layers to schedules (accepted: {{bronze: 'cron(0 * * * ? *)'}})"
    bad = [k for k, v in value.items() if v not in ("", None) and not (isinstance(v, str) and GLUE_CRON.match(v))]
    if bad:
        listed = ", ".join(f"{k}: {value[k]!r}" for k in bad)
        return f"{listed} is not a Glue schedule (accepted: cron() with six fields, like 'cron(15 2 * * ? *)', or '')"
    return None


def absolute_path(value, check):
    if isinstance(value, str) and value.startswith("/") and "\n" not in value:
        return None
    return f"{value!r} is not an absolute path (accepted: a path starting with '/')"


# An OCI image reference: [registry[:port]/]path[:tag][@sha256:digest], as docker and containerd parse it.
CONTAINER_IMAGE = re.compile(
    r"^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$"
)


def container_image(value, check):
    if isinstance(value, str) and value and CONTAINER_IMAGE.match(value):
        return None
    shown = "empty" if value in ("", None) else repr(value)
    return (
        f"{shown} is not a container image reference (accepted: registry/repository:tag, like "
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/argoeks/rag-service:1)"
    )


def boolean(value, check):
    if isinstance(value, bool) or value in ("true", "false", "yes", "no", "True", "False"):
        return None
    return f"{value!r} is not a boolean (accepted: true or false)"


def mapping(value, check):
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return None
    return f"{value!r} is not a mapping of names to values"


RULES = {
    "s3_bucket_name": s3_bucket_name,
    "dynamodb_table_name": dynamodb_table_name,
    "aws_region": aws_region,
    "email_list": email_list,
    "number": number,
    "integer": integer,
    "port": port,
    "choice": choice,
    "cidr": cidr,
    "version": version,
    "cidr_list": cidr_list,
    "az_list": az_list,
    "name": name,
    "lower_name": lower_name,
    "model_name": model_name,
    "gpu_instance_types": gpu_instance_types,
    "ip_address": ip_address,
    "url": url,
    "absolute_path": absolute_path,
    "webhook_url": webhook_url,
    "glue_name": glue_name,
    "glue_schedules": glue_schedules,
    "alert_receivers": alert_receivers,
    "duration": duration,
    "byte_size": byte_size,
    "boolean": boolean,
    "container_image": container_image,
    "mapping": mapping,
    "smtp_relay": smtp_relay,
    "restricted_cidrs": restricted_cidrs,
}


def find_problems(checks, values, target=None):
    """Every problem of `values` against `checks`, as 'variable: sentence' strings, in check order."""
    problems = []
    for check in checks:
        var = check["var"]
        if check.get("targets") and target not in check["targets"]:
            continue
        value = values.get(var)
        if value is None:
            if check.get("required", True):
                problems.append(f"{var}: is not set" + (f" ({check['hint']})" if check.get("hint") else ""))
            continue
        if value == "" and check.get("allow_empty"):
            continue
        problem = RULES[check["rule"]](value, check)
        if problem:
            problems.append(f"{var}: {problem}" + (f"; {check['hint']}" if check.get("hint") else ""))
    return problems
