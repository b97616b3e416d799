// Package env declares every environment variable moat reads, in one place, with its meaning.
// Nothing else in moat calls os.Getenv.
package env

import "os"

// Variable is one environment variable moat reads.
type Variable struct {
	Name        string
	Description string
}

// The variables moat reads.
var (
	// Home overrides where moat keeps its data: the cache and state directories become
	// $MOAT_HOME/cache and $MOAT_HOME/state.
	Home = Variable{"MOAT_HOME", "directory for all of moat's data (cache and state); overrides the XDG directories"}
	// LogLevel sets the default of --log-level.
	LogLevel = Variable{"MOAT_LOG_LEVEL", "default log level: debug, info, warn or error"}
	// NoColor disables colour, like --no-color; the cross-tool NO_COLOR is honoured too.
	NoColor = Variable{"MOAT_NO_COLOR", "disable colour in output when set to any value"}
	// NoColorStd is the cross-tool convention (https://no-color.org).
	NoColorStd = Variable{"NO_COLOR", "disable colour in output when set to any value"}
	// XDGCacheHome and XDGStateHome locate moat's directories when MOAT_HOME is unset.
	XDGCacheHome = Variable{"XDG_CACHE_HOME", "base directory for caches (default ~/.cache)"}
	XDGStateHome = Variable{"XDG_STATE_HOME", "base directory for state (default ~/.local/state)"}
	// DockerHost locates the Docker daemon for docker: image sources.
	DockerHost = Variable{"DOCKER_HOST", "Docker daemon address for docker: sources (default unix:///var/run/docker.sock)"}
	// DockerConfig locates the Docker config file with registry credentials.
	DockerConfig = Variable{"DOCKER_CONFIG", "directory of the Docker config.json with registry credentials"}
	// DBURL is the default of `moat db update --base-url`: a mirror of the OSV bucket.
	DBURL = Variable{"MOAT_DB_URL", "base URL of the OSV archives for moat db update (default https://osv-vulnerabilities.storage.googleapis.com)"}
	// DBDir is the default of --db-dir: where the advisory database lives.
	DBDir = Variable{"MOAT_DB_DIR", "directory of the advisory database (default: db/ in the cache directory)"}
	// DBMaxAge is the default of --db-max-age: how old the advisory data may be before moat warns.
	DBMaxAge = Variable{"MOAT_DB_MAX_AGE", "age after which the advisory database is reported as stale (default 168h)"}
	// Password unlocks encrypted private keys (`moat key generate`, `sign`, `attest`,
	// `scan --attest`) without a prompt; cosign's own variable is read when it is unset.
	Password = Variable{"MOAT_PASSWORD", "password of the encrypted signing key, instead of a terminal prompt"}
	// CosignPassword is cosign's name for the same thing, so that scripts written for cosign
	// work unchanged.
	CosignPassword = Variable{"COSIGN_PASSWORD", "read as the signing key password when MOAT_PASSWORD is unset"}
	// DecisionLog is where policy decisions are appended.
	DecisionLog = Variable{"MOAT_DECISION_LOG", "JSON-lines file policy decisions are appended to (default: decisions.jsonl in the state directory; \"-\" for none)"}
	// Policy is the default of `moat run --policy`: the trust policy in force.
	Policy = Variable{"MOAT_POLICY", "trust policy file moat run enforces (default: none, every image runs at hardened)"}
	// EngineDir is where moat run keeps containers and their layer cache.
	EngineDir = Variable{"MOAT_ENGINE_DIR", "where moat run keeps containers, their store and the layer cache (default: /var/lib/moat as root without MOAT_HOME, else engine/ in the state directory); every directory above it must be searchable by others"}
	// SampleImage points tests and benchmarks at the sample image `make sample-image` builds.
	SampleImage = Variable{"MOAT_SAMPLE_IMAGE", "tests and benchmarks only: directory of the sample image built by make sample-image"}
)

// All lists every variable, for documentation and `moat --help`.
var All = []Variable{Home, LogLevel, NoColor, NoColorStd, XDGCacheHome, XDGStateHome, DockerHost, DockerConfig, DBURL, DBDir, DBMaxAge, Password, CosignPassword, DecisionLog, Policy, EngineDir, SampleImage}

// Get returns the variable's value, or "" when unset.
func (v Variable) Get() string { return os.Getenv(v.Name) }

// Lookup returns the variable's value and whether it is set.
func (v Variable) Lookup() (string, bool) { return os.LookupEnv(v.Name) }
