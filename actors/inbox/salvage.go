package inbox

import (
	"encoding/binary"
	"encoding/json"
)

// LooksLikeEntry reports whether a key and value found on a database
// page outside the tree (qpc db salvage) are an inbox entry: an 8-byte
// number and the JSON entry that carries the same number.
func LooksLikeEntry(k, v []byte) bool {
	if len(k) != 8 || len(v) == 0 || v[0] != '{' {
		return false
	}
	var e Entry
	if json.Unmarshal(v, &e) != nil {
		return false
	}
	return e.Seq == binary.BigEndian.Uint64(k) && e.ID != "" && e.From != ""
}
