package spec

import (
	"fmt"
	"math"
)

// The host ID ranges moat maps containers to.
//
// The default base, 0x70000000 (1879048192), sits above the range systemd reserves for
// container UIDs (0x00080000–0x6FFFFFFF, used by systemd-nspawn) and below its "foreign" range
// (from 0x7FFE0000), and below 2^31, past which some tools treat IDs as negative. It leaves
// room for MaxIDSlots(DefaultIDBase) = 4094 non-overlapping ranges of IDRangeSize IDs.
const (
	DefaultIDBase uint32 = 0x70000000
	// IDRangeSize is the number of IDs each container maps: container IDs 0–65535, the whole
	// range a Linux distribution's users and groups live in (nobody is 65534).
	IDRangeSize uint32 = 65536
	// MinHostID is the lowest host ID a mapping may start at, so that a container's IDs never
	// coincide with the host's login users and system accounts.
	MinHostID uint32 = 65536
	// idCeiling bounds the ranges moat hands out: below systemd's foreign UID range.
	idCeiling uint32 = 0x7FFE0000
)

// IDMap maps container user and group IDs 0..Size-1 to host IDs HostUID.. and HostGID..: root
// in the container is HostUID on the host, an unprivileged user there.
type IDMap struct {
	HostUID uint32 `json:"hostUID"`
	HostGID uint32 `json:"hostGID"`
	Size    uint32 `json:"size"`
}

// DefaultIDMap is the mapping a container gets when Options.IDMap is unset: slot 0 of
// DefaultIDBase.
func DefaultIDMap() IDMap {
	return IDMap{HostUID: DefaultIDBase, HostGID: DefaultIDBase, Size: IDRangeSize}
}

// IDRange returns slot n of the ranges starting at base: host IDs base+n*IDRangeSize up to
// IDRangeSize IDs further, the same for users and groups.
func IDRange(base, n uint32) (IDMap, error) {
	if base < MinHostID {
		return IDMap{}, fmt.Errorf("%w: ID base %d is below %d, where host users live", ErrInvalid, base, MinHostID)
	}
	if n >= MaxIDSlots(base) {
		return IDMap{}, fmt.Errorf("%w: ID range %d does not fit above base %d (at most %d ranges)", ErrInvalid, n, base, MaxIDSlots(base))
	}
	host := base + n*IDRangeSize
	return IDMap{HostUID: host, HostGID: host, Size: IDRangeSize}, nil
}

// MaxIDSlots is the number of ranges IDRange hands out above base.
func MaxIDSlots(base uint32) uint32 {
	if base >= idCeiling {
		return 0
	}
	return (idCeiling - base) / IDRangeSize
}

// PickIDRange returns the lowest range above base that overlaps none of inUse (the mappings of
// the containers that exist), so that each container can have host IDs of its own: a process
// that escapes one container then owns nothing of another's. It fails when every range is taken.
func PickIDRange(base uint32, inUse []IDMap) (IDMap, error) {
	for n := uint32(0); n < MaxIDSlots(base); n++ {
		m, err := IDRange(base, n)
		if err != nil {
			return IDMap{}, err
		}
		free := true
		for _, u := range inUse {
			if m.overlaps(u) {
				free = false
				break
			}
		}
		if free {
			return m, nil
		}
	}
	return IDMap{}, fmt.Errorf("%w: all %d ID ranges above %d are in use", ErrInvalid, MaxIDSlots(base), base)
}

func (m IDMap) overlaps(o IDMap) bool {
	over := func(a, b, size, osize uint32) bool {
		return uint64(a) < uint64(b)+uint64(osize) && uint64(b) < uint64(a)+uint64(size)
	}
	return over(m.HostUID, o.HostUID, m.Size, o.Size) || over(m.HostGID, o.HostGID, m.Size, o.Size)
}

// validate checks that m maps the whole range a distribution uses to unprivileged host IDs.
func (m IDMap) validate() error {
	if m.Size < IDRangeSize {
		return fmt.Errorf("%w: ID map size %d is smaller than %d; images expect users up to 65535 (nobody is 65534)", ErrInvalid, m.Size, IDRangeSize)
	}
	for _, h := range []struct {
		what string
		id   uint32
	}{{"UID", m.HostUID}, {"GID", m.HostGID}} {
		if h.id < MinHostID {
			return fmt.Errorf("%w: host %s range starts at %d, below %d: container root would share an ID with a host user", ErrInvalid, h.what, h.id, MinHostID)
		}
		if uint64(h.id)+uint64(m.Size)-1 >= math.MaxUint32 {
			return fmt.Errorf("%w: host %s range %d+%d runs past the largest valid ID", ErrInvalid, h.what, h.id, m.Size)
		}
	}
	return nil
}
