# ruff: noqa: E501 - fixture code reads best one snippet a line, as a file would hold it
"""Fifty kinds of fake secrets, each planted in a few lines of realistic code.

No value here is real: every random part is derived from a fixed label by
SHA-256, so the fixture is deterministic and no scanner of this repository
finds a literal token in it (prefixes are split from their bodies).
``core`` is the random part of each secret: the test checks that no 8
characters of it reach a provider. ``anchor`` is code on the same line that
must survive redaction.

Also ``CLEAN``: ordinary files without secrets (lockfile hashes, UUIDs, git
SHAs, long identifiers) that redaction must leave byte for byte.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
LOWER = "abcdefghijklmnopqrstuvwxyz"
DIGITS = "0123456789"
ALNUM = UPPER + LOWER + DIGITS
HEX = "0123456789abcdef"
B64 = ALNUM + "+/"
URLSAFE = ALNUM + "-_"
BECH32 = "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L"
PASSWORD = ALNUM + "!#%*-_~"


def fake(label: str, alphabet: str, length: int) -> str:
    """``length`` characters of ``alphabet``, a fixed function of ``label``."""
    out: list[str] = []
    counter = 0
    while len(out) < length:
        block = hashlib.sha256(f"{label}:{counter}".encode()).digest()
        out.extend(alphabet[b % len(alphabet)] for b in block)
        counter += 1
    return "".join(out[:length])


@dataclass(frozen=True)
class Planted:
    kind: str
    path: str
    code: str  # the snippet, with the secret in it
    secret: str  # the whole secret value as written in the code
    core: str  # its random part
    anchor: str  # code on the secret's line that must stay


def _plant(
    kind: str, path: str, template: str, prefix: str, core: str, suffix: str = "", anchor: str = ""
) -> Planted:
    secret = prefix + core + suffix
    code = template.replace("{S}", secret)
    before = [line.strip() for line in template.split("{S}")[0].split("\n") if line.strip()]
    return Planted(kind, path, code, secret, core, anchor or before[-1])


def _pem(label: str, header: str, lines: int) -> tuple[str, str]:
    """A fake PEM body: ``lines`` lines of 64 base64 characters and a short last one."""
    body = [fake(f"{label}{n}", B64, 64) for n in range(lines)] + [fake(label, B64, 20) + "=="]
    return header, "\n".join(body)


def _build() -> list[Planted]:
    p: list[Planted] = []
    add = p.append
    add(
        _plant(
            "aws-access-key-id",
            "deploy/aws.py",
            'client = boto3.client(\n    "s3",\n    aws_access_key_id="{S}",\n)',
            "AK" + "IA",
            fake("aws-id", UPPER + DIGITS, 16),
        )
    )
    add(
        _plant(
            "aws-secret-access-key",
            "deploy/aws.py",
            'session = boto3.Session(\n    aws_secret_access_key="{S}",\n    region_name="eu-west-1",\n)',
            "",
            fake("aws-secret", B64, 40),
        )
    )
    add(
        _plant(
            "aws-session-token",
            "deploy/.env",
            "AWS_REGION=eu-west-1\nAWS_SESSION_TOKEN={S}\nAWS_PROFILE=ci",
            "IQoJb3JpZ2luX2Vj",
            fake("aws-sts", B64, 120),
        )
    )
    add(
        _plant(
            "gcp-api-key",
            "web/maps.js",
            "const map = new Maps({\n  key: '{S}',\n  zoom: 12,\n});",
            "AI" + "za",
            fake("gcp-key", URLSAFE, 35),
        )
    )
    add(
        _plant(
            "gcp-oauth-client-secret",
            "auth/google.py",
            'flow = Flow.from_client_config(\n    {"web": {"client_id": "123.apps", "client_secret": "{S}"}},\n)',
            "GOCSPX-",
            fake("gcp-oauth", URLSAFE, 28),
        )
    )
    add(
        _plant(
            "gcp-access-token",
            "scripts/gcs.sh",
            'curl -s "$BUCKET_URL" \\\n  -H "X-Goog-Token: {S}" \\\n  -o out.json',
            "ya29.",
            fake("gcp-token", URLSAFE, 80),
        )
    )
    add(
        _plant(
            "gcp-service-account-key",
            "config/sa.json",
            '{\n  "type": "service_account",\n  "private_key": "-----BEGIN PRIVATE KEY-----\\n{S}'
            '\\n-----END PRIVATE KEY-----\\n",\n  "client_email": "ci@proj.iam.example"\n}',
            "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC",
            fake("gcp-sa", B64, 120),
        )
    )
    add(
        _plant(
            "azure-storage-connection-string",
            "settings/azure.py",
            'STORAGE = (\n    "DefaultEndpointsProtocol=https;AccountName=acme;"\n    "AccountKey={S};EndpointSuffix=core.windows.net"\n)',
            "",
            fake("azure-storage", B64, 86),
            "==",
        )
    )
    add(
        _plant(
            "azure-sas-token",
            "jobs/export.py",
            'URL = "https://acme.blob.core.windows.net/x/f.csv?sv=2022-11-02&sr=b&sig={S}"\nfetch(URL)',
            "",
            fake("azure-sas", ALNUM, 43),
            "%3D",
        )
    )
    add(
        _plant(
            "azure-ad-client-secret",
            "auth/azure.py",
            'credential = ClientSecretCredential(\n    tenant_id=TENANT,\n    client_id=CLIENT,\n    client_secret="{S}",\n)',
            "",
            fake("azure-ad-a", ALNUM, 3) + "8Q~" + fake("azure-ad", ALNUM + "_~.", 34),
        )
    )
    add(
        _plant(
            "github-classic-pat",
            "ci/release.py",
            'gh = Github("{S}")\nrepo = gh.get_repo("acme/shop")',
            "gh" + "p_",
            fake("ghp", ALNUM, 36),
        )
    )
    add(
        _plant(
            "github-oauth-token",
            "ci/sync.js",
            "const octo = new Octokit({ auth: '{S}' });\nawait octo.repos.get(params);",
            "gh" + "o_",
            fake("gho", ALNUM, 36),
        )
    )
    add(
        _plant(
            "github-fine-grained-pat",
            "ci/mirror.sh",
            'git clone "https://x-access:{S}@git.example.com/acme/shop.git"\ncd shop',
            "github_" + "pat_",
            fake("ghfg1", ALNUM, 22) + "_" + fake("ghfg2", ALNUM, 59),
        )
    )
    add(
        _plant(
            "gitlab-pat",
            "ci/gitlab.py",
            'gl = gitlab.Gitlab(URL, private_token="{S}")\ngl.auth()',
            "gl" + "pat-",
            fake("glpat", URLSAFE, 20),
        )
    )
    add(
        _plant(
            "slack-bot-token",
            "notify/slack.py",
            'client = WebClient(token="{S}")\nclient.chat_postMessage(channel="#ops", text=msg)',
            "xo" + "xb-" + fake("sl1", DIGITS, 12) + "-" + fake("sl2", DIGITS, 13) + "-",
            fake("slack-bot", ALNUM, 24),
        )
    )
    add(
        _plant(
            "slack-webhook",
            "notify/hooks.py",
            'WEBHOOK = "https://hooks.slack.com/services/{S}"\nrequests.post(WEBHOOK, json=body)',
            "T" + fake("slw1", UPPER + DIGITS, 8) + "/B" + fake("slw2", UPPER + DIGITS, 10) + "/",
            fake("slack-hook", ALNUM, 24),
        )
    )
    add(
        _plant(
            "stripe-secret-key",
            "billing/stripe.py",
            'stripe.api_key = "{S}"\ncharge = stripe.Charge.create(amount=500)',
            "sk" + "_live_",
            fake("stripe", ALNUM, 32),
        )
    )
    add(
        _plant(
            "stripe-webhook-secret",
            "billing/hooks.py",
            'event = stripe.Webhook.construct_event(\n    payload, sig_header, "{S}"\n)',
            "wh" + "sec_",
            fake("whsec", ALNUM, 32),
        )
    )
    add(
        _plant(
            "twilio-api-key",
            "sms/send.py",
            'client = Client("{S}", api_secret, account_sid)\nclient.messages.create(to=n)',
            "SK",
            fake("twilio-key", HEX, 32),
        )
    )
    add(
        _plant(
            "twilio-auth-token",
            "sms/settings.py",
            'TWILIO_ACCOUNT_SID = ACCOUNT\nTWILIO_AUTH_TOKEN = "{S}"\nTWILIO_FROM = "+15550100"',
            "",
            fake("twilio-auth", HEX, 32),
        )
    )
    add(
        _plant(
            "sendgrid-api-key",
            "mail/send.py",
            'sg = SendGridAPIClient("{S}")\nsg.send(message)',
            "SG.",
            fake("sg1", URLSAFE, 22) + "." + fake("sg2", URLSAFE, 43),
        )
    )
    add(
        _plant(
            "npm-token",
            "ci/publish.sh",
            'export NODE_AUTH_TOKEN="{S}"\nnpm publish --access public',
            "np" + "m_",
            fake("npm", ALNUM, 36),
        )
    )
    add(
        _plant(
            "npmrc-auth-token",
            ".npmrc",
            "@acme:registry=https://npm.internal.example/\n//npm.internal.example/:_authToken={S}\nalways-auth=true",
            "",
            fake("npmrc", HEX, 32),
        )
    )
    add(
        _plant(
            "pypi-token",
            ".pypirc",
            "[internal]\nusername = __token__\npassword = {S}\n",
            "pypi-" + "AgEIcHlwaS5vcmc",
            fake("pypi", URLSAFE, 80),
        )
    )
    add(
        _plant(
            "jwt",
            "tests/fixtures/api.py",
            'resp = client.get("/me", headers={"X-Session": "{S}"})\nassert resp.ok',
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI",
            fake("jwt1", URLSAFE, 40) + "." + fake("jwt", URLSAFE, 43),
        )
    )
    add(
        _plant(
            "openai-project-key",
            "ai/client.py",
            'llm = OpenAI(api_key="{S}")\nresp = llm.responses.create(model=M)',
            "sk-" + "proj-",
            fake("openai", URLSAFE, 64),
        )
    )
    add(
        _plant(
            "anthropic-key",
            "ai/claude.ts",
            'const claude = new Anthropic({\n  apiKey: "{S}",\n});',
            "sk-" + "ant-api03-",
            fake("anthropic", URLSAFE, 93) + "AA",
        )
    )
    add(
        _plant(
            "huggingface-token",
            "ml/download.py",
            'snapshot_download(repo_id=REPO, token="{S}")\nload(REPO)',
            "h" + "f_",
            fake("hf", ALNUM, 34),
        )
    )
    add(
        _plant(
            "shopify-token",
            "shop/admin.rb",
            'session = ShopifyAPI::Session.new(\n  access_token: "{S}"\n)',
            "shp" + "at_",
            fake("shopify", HEX, 32),
        )
    )
    add(
        _plant(
            "digitalocean-token",
            "infra/main.tf",
            'provider "digitalocean" {\n  token = "{S}"\n}',
            "dop" + "_v1_",
            fake("do", HEX, 64),
        )
    )
    add(
        _plant(
            "mailgun-key",
            "mail/mailgun.py",
            'requests.post(URL, auth=("api", "{S}"), data=form)\nlog.info("sent")',
            "key" + "-",
            fake("mailgun", ALNUM, 32),
        )
    )
    add(
        _plant(
            "square-token",
            "pay/square.py",
            'sq = Client(environment="production")\nsq.set_token("{S}")',
            "sq0" + "atp-",
            fake("square", URLSAFE, 22),
        )
    )
    add(
        _plant(
            "databricks-token",
            "etl/db.py",
            'conn = sql.connect(server_hostname=HOST, http_path=PATH,\n    access_token="{S}")',
            "da" + "pi",
            fake("databricks", HEX, 32),
        )
    )
    add(
        _plant(
            "vault-token",
            "ops/vault.py",
            'vault = hvac.Client(url=VAULT_URL)\nvault.token = "{S}"',
            "hv" + "s.",
            fake("vault", URLSAFE, 90),
        )
    )
    add(
        _plant(
            "newrelic-key",
            "ops/newrelic.yml",
            "common:\n  license_key: {S}\n  app_name: shop",
            "NR" + "AK-",
            fake("newrelic", UPPER + DIGITS, 27),
        )
    )
    add(
        _plant(
            "linear-key",
            "tools/linear.py",
            'HEADERS = {"Authorization": "{S}"}\nrun(HEADERS)',
            "lin" + "_api_",
            fake("linear", ALNUM, 40),
        )
    )
    add(
        _plant(
            "postman-key",
            "tools/postman.py",
            'POSTMAN = PostmanClient(key="{S}")\nPOSTMAN.sync()',
            "PM" + "AK-" + fake("postman1", HEX, 24) + "-",
            fake("postman", HEX, 34),
        )
    )
    add(
        _plant(
            "age-secret-key",
            "ops/keys.txt",
            "# created: 2024-01-02\n# public key: age1qqq\n{S}",
            "AGE-SECRET-" + "KEY-1",
            fake("age", BECH32, 58),
            anchor="# public key: age1qqq",
        )
    )
    header, body = _pem("rsa", "RSA", 6)
    add(
        _plant(
            "rsa-private-key",
            "certs/server.key",
            "-----BEGIN RSA PRIVATE KEY-----\n{S}\n-----END RSA PRIVATE KEY-----",
            "",
            body,
            anchor="-----BEGIN RSA PRIVATE KEY-----",
        )
    )
    header, body = _pem("openssh", "OPENSSH", 5)
    add(
        _plant(
            "openssh-private-key",
            "deploy/keys.py",
            'DEPLOY_KEY = """\\\n-----BEGIN OPENSSH PRIVATE KEY-----\n{S}\n-----END OPENSSH PRIVATE KEY-----\n"""',
            "",
            body,
            anchor="-----BEGIN OPENSSH PRIVATE KEY-----",
        )
    )
    header, body = _pem("pgp", "PGP", 4)
    add(
        _plant(
            "pgp-private-key",
            "release/signing.asc",
            "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\n{S}\n-----END PGP PRIVATE KEY BLOCK-----",
            "",
            body,
            anchor="-----BEGIN PGP PRIVATE KEY BLOCK-----",
        )
    )
    add(
        _plant(
            "postgres-url",
            "app/db.py",
            'engine = create_engine("postgresql+psycopg://shop:{S}@db.internal:5432/shop")\nSession = sessionmaker(engine)',
            "",
            fake("pg", ALNUM + "-_~", 18),
        )
    )
    add(
        _plant(
            "mongodb-url",
            "app/mongo.js",
            "const uri = `mongodb+srv://reporting:{S}@cluster0.mongo.example/app?retryWrites=true`;\nconnect(uri);",
            "",
            fake("mongo", ALNUM, 20),
        )
    )
    add(
        _plant(
            "redis-url",
            "config/cache.yaml",
            "cache:\n  url: redis://:{S}@cache.internal:6379/0\n  ttl: 300",
            "",
            fake("redis", ALNUM, 24),
        )
    )
    add(
        _plant(
            "basic-auth-url",
            "ci/fetch.py",
            'urllib.request.urlopen("https://deploy:{S}@artifacts.internal/build.tgz")',
            "",
            fake("basic", ALNUM + "!*", 16),
        )
    )
    add(
        _plant(
            "python-password-assignment",
            "app/settings.py",
            'DEBUG = False\nDB_PASSWORD = "{S}"\nDB_HOST = "db.internal"',
            "",
            fake("pypw", PASSWORD, 14),
        )
    )
    add(
        _plant(
            "js-api-key-assignment",
            "web/config.js",
            "export const config = {\n  region: 'eu',\n  apiKey: '{S}',\n};",
            "",
            fake("jskey", ALNUM, 32),
        )
    )
    add(
        _plant(
            "yaml-password",
            "deploy/values.yaml",
            "postgresql:\n  auth:\n    username: shop\n    password: {S}\n    database: shop",
            "",
            fake("yamlpw", ALNUM + "!%", 16),
        )
    )
    add(
        _plant(
            "json-client-secret",
            "config/oauth.json",
            '{\n  "client_id": "shop-web",\n  "client_secret": "{S}",\n  "redirect_uri": "/cb"\n}',
            "",
            fake("jsonsec", URLSAFE, 40),
        )
    )
    add(
        _plant(
            "dotenv-secret-key",
            "deploy/prod.env",
            "DJANGO_DEBUG=0\nDJANGO_SECRET_KEY={S}\nALLOWED_HOSTS=shop.example",
            "",
            fake("djsk", ALNUM + "!#%*", 50),
        )
    )
    add(
        _plant(
            "ini-passphrase",
            "conf/backup.ini",
            "[backup]\ntarget = s3://backups\npassphrase = {S}\n",
            "",
            fake("inipp", ALNUM, 20),
        )
    )
    add(
        _plant(
            "bearer-header",
            "clients/billing.py",
            'resp = httpx.get(URL, headers={"Authorization": "Bearer {S}"})\nresp.raise_for_status()',
            "",
            fake("bearer", URLSAFE, 48),
        )
    )
    add(
        _plant(
            "basic-auth-header",
            "scripts/healthcheck.sh",
            'curl -fsS -H "Authorization: Basic {S}" "$URL/health"\necho ok',
            "",
            fake("basic-hdr", B64, 36),
            "==",
        )
    )
    add(
        _plant(
            "high-entropy-signing-key",
            "app/crypto.py",
            'from cryptography.fernet import Fernet\nFERNET_KEY = b"{S}"\ncipher = Fernet(FERNET_KEY)',
            "",
            fake("fernet", URLSAFE, 43),
            "=",
        )
    )
    add(
        _plant(
            "docker-config-auth",
            "ci/docker-config.json",
            '{"auths": {"registry.internal": {\n  "auth": "{S}"\n}}}',
            "",
            fake("docker", B64, 40),
        )
    )
    add(
        _plant(
            "telegram-bot-token",
            "bots/tg.py",
            'bot = Bot("{S}")\nbot.run()',
            fake("tg1", DIGITS, 10) + ":AA",
            fake("tg", URLSAFE, 33),
        )
    )
    add(
        _plant(
            "php-db-password",
            "config/database.php",
            "return [\n    'host' => 'db.internal',\n    'password' => '{S}',\n];",
            "",
            fake("phppw", PASSWORD, 16),
        )
    )
    add(
        _plant(
            "go-struct-password",
            "internal/smtp.go",
            'cfg := smtp.Config{\n\tUser:     "mailer",\n\tPassword: "{S}",\n}',
            "",
            fake("gopw", PASSWORD, 18),
        )
    )
    return p


PLANTED: list[Planted] = _build()

CLEAN: dict[str, str] = {
    "shop/cart.py": '''"""Shopping cart totals."""

from __future__ import annotations

import hashlib
import uuid
from decimal import Decimal

TAX_RATE = Decimal("0.20")
MAX_TOKENS = 4096
token_budget = 1200
CACHE_KEY_PREFIX = "cart:v2:"
PASSWORD_MIN_LENGTH = 12
SECRET_NAME = "prod/shop/db"
API_KEY_HEADER = "X-Api-Key"
BUILD_SHA = "3f786850e387550fdab836ed7e6dc881de23001b"
ORDER_NAMESPACE = uuid.UUID("6ba7b811-9dad-11d1-80b4-00c04fd430c8")


class Cart:
    def __init__(self, owner_id: str, token: str | None = None) -> None:
        self.owner_id = owner_id
        self.token = token
        self.items: dict[str, int] = {}

    def cache_key(self) -> str:
        return CACHE_KEY_PREFIX + hashlib.sha256(self.owner_id.encode()).hexdigest()

    def check(self, password: str) -> bool:
        password_hash = hash_password(password, salt=self.owner_id)
        return password_hash == self.stored_hash

    def total(self, prices: dict[str, Decimal]) -> Decimal:
        subtotal = sum((prices[sku] * n for sku, n in self.items.items()), Decimal(0))
        return (subtotal * (1 + TAX_RATE)).quantize(Decimal("0.01"))


def login(request):
    password = request.form["password"]
    token = request.headers.get("Authorization", "").removeprefix("Bearer ")
    api_key = os.environ["SHOP_API_KEY"]
    secret = settings.SECRET_KEY
    return authenticate(password=password, token=token, api_key=api_key, secret=secret)
''',
    "web/package-lock.json": """{
  "name": "shop-web",
  "lockfileVersion": 3,
  "packages": {
    "node_modules/left-pad": {
      "version": "1.3.0",
      "resolved": "https://npm.internal.example/left-pad/-/left-pad-1.3.0.tgz",
      "integrity": "sha512-XI5MPzVNApjAyhQzphX8BkmKsKUxD4LdyK24iZeQUNY1Gy7a/YF3Dg3/q5s5tB7oO7QkbZSLo1F2+TMq3L7w5A=="
    },
    "node_modules/tiny-lru": {
      "version": "11.2.5",
      "integrity": "sha1-2jmj7l5rSw0yVb/vlWAYkK/YBwk="
    }
  }
}
""",
    "deploy/release.yaml": """release:
  commit: 9fceb02d0ae598e95dc970b74767f19372d61af8
  tree: d670460b4b4aece5915caf5c68d12f560a9fe3e4
  request_id: 0f8fad5b-d9cb-469f-a165-70867728950e
  image: registry.internal/shop@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
  token_ttl: 3600
  secret_ref: vault://shop/prod/db
  password: ${DB_PASSWORD}
  api_key: "{{ .Values.apiKey }}"
  replicas: 3
""",
    "web/session.ts": """import { createHash } from "crypto";

export const SESSION_COOKIE = "sid";
const tokenizer = new Tokenizer({ maxTokens: 512 });

export function fingerprint(userAgent: string, ip: string): string {
  return createHash("sha1").update(`${userAgent}|${ip}`).digest("hex");
}

export async function refresh(session: Session): Promise<void> {
  const token = await session.refreshToken();
  const headers = { Authorization: `Bearer ${token}` };
  await fetch("/api/refresh", { method: "POST", headers });
}
""",
}
