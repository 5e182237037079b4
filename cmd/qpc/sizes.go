package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/quicprochat/qpc/messages"
	"github.com/quicprochat/qpc/transports/lora"
	"github.com/quicprochat/qpc/transports/lora/link"
)

// airRow is one form of a sealed 32-byte text as a LoRa link sends it.
type airRow struct {
	Name  string  `json:"name"`
	Frame int     `json:"frame_bytes"`
	At    []airAt `json:"at"`
	Note  string  `json:"note"`
}

// airAt is a frame on one radio setting: the packets the link cuts it
// into at that spreading factor's default MTU (lora.MTUFor: 255 bytes,
// 51 at SF12), each with the link's header, fragment header and MAC, and
// their time on air on 125 kHz, coding rate 4/5, the default preamble
// (ACKs not counted).
type airAt struct {
	SF        int     `json:"sf"`
	MTU       int     `json:"mtu"`
	Packets   int     `json:"packets"`
	OnAir     int     `json:"on_air_bytes"`
	AirtimeMS float64 `json:"airtime_ms"`
}

// airRows are the two forms of a sealed 32-byte text: the signed envelope
// (every link but a radio) and the compact one (a radio first hop), at
// SF7 and SF12.
func airRows(rows []messages.SizeRow) ([]airRow, error) {
	out := []airRow{
		{Name: "envelope-sealed-32", Note: "signed envelope (default): relays verify the sender"},
		{Name: "compact-sealed-32", Note: "compact envelope (first hop constrained): only the destination authenticates the sender"},
	}
	for i := range out {
		for _, r := range rows {
			if r.Name == out[i].Name {
				out[i].Frame = r.Bytes
			}
		}
		if out[i].Frame == 0 {
			return nil, fmt.Errorf("sizes: no row %s", out[i].Name)
		}
		for _, sf := range []int{7, 12} {
			at, err := onAir(out[i].Frame, sf)
			if err != nil {
				return nil, err
			}
			out[i].At = append(out[i].At, at)
		}
	}
	return out, nil
}

// fappAirRows are the FAPP messages (fapp.Sizes) on a LoRa link at SF9
// and SF12, fragmented at each spreading factor's default MTU.
func fappAirRows(rows []messages.SizeRow) ([]airRow, error) {
	out := make([]airRow, 0, len(rows))
	for _, r := range rows {
		ar := airRow{Name: r.Name, Frame: r.Bytes, Note: r.Note}
		for _, sf := range []int{9, 12} {
			at, err := onAir(r.Bytes, sf)
			if err != nil {
				return nil, err
			}
			ar.At = append(ar.At, at)
		}
		out = append(out, ar)
	}
	return out, nil
}

// onAir is a frame of frameLen bytes on a LoRa link at spreading factor
// sf (see airAt).
func onAir(frameLen, sf int) (airAt, error) {
	p := lora.Params{SF: sf, Bandwidth: 125_000, CR: lora.CR45, Preamble: lora.DefaultPreamble}
	mtu := lora.MTUFor(p)
	packets, overhead := link.Overhead(frameLen, mtu)
	at := airAt{SF: sf, MTU: mtu, Packets: packets, OnAir: frameLen + overhead}
	chunk := mtu - link.DataOverhead
	var total time.Duration
	for left := frameLen; left > 0; left -= chunk {
		d, err := lora.Airtime(p, min(left, chunk)+link.DataOverhead)
		if err != nil {
			return airAt{}, err
		}
		total += d
	}
	at.AirtimeMS = float64(total.Microseconds()) / 1000
	return at, nil
}

func printAirRows(w io.Writer, rows []airRow) error {
	fmt.Fprintf(w, "\nA sealed 32-byte text on a LoRa link (125 kHz, CR 4/5, %d B link overhead per packet; SF7 with 255-byte packets, SF12 with 51):\n", link.DataOverhead)
	return printAirTable(w, "form", rows)
}

// printFAPPAirRows prints the FAPP messages' rows (fappAirRows).
func printFAPPAirRows(w io.Writer, rows []airRow) error {
	fmt.Fprintf(w, "\nFAPP messages on a LoRa link (125 kHz, CR 4/5, %d B link overhead per packet; SF9 with 255-byte packets, SF12 with 51):\n", link.DataOverhead)
	return printAirTable(w, "message", rows)
}

func printAirTable(w io.Writer, first string, rows []airRow) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "%s\tframe", first)
	if len(rows) > 0 {
		for _, a := range rows[0].At {
			fmt.Fprintf(tw, "\tSF%d on air\tSF%d airtime", a.SF, a.SF)
		}
	}
	fmt.Fprintf(tw, "\t\n")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%d B", r.Name, r.Frame)
		for _, a := range r.At {
			fmt.Fprintf(tw, "\t%d B in %d\t%.1f ms", a.OnAir, a.Packets, a.AirtimeMS)
		}
		fmt.Fprintf(tw, "\t%s\n", r.Note)
	}
	return tw.Flush()
}

// groupAirRows are a group's 32-byte text in each mode (MLS in its
// envelope, MLS-Lite signed and not) on a LoRa link at SF7 and SF12.
func groupAirRows(rows []messages.SizeRow) ([]airRow, error) {
	var out []airRow
	for _, name := range []string{"group-envelope-application-32", "mls-lite-signed-32", "mls-lite-32"} {
		ar := airRow{Name: name}
		for _, r := range rows {
			if r.Name == name {
				ar.Frame, ar.Note = r.Bytes, r.Note
			}
		}
		if ar.Frame == 0 {
			return nil, fmt.Errorf("sizes: no group row %s", name)
		}
		for _, sf := range []int{7, 12} {
			at, err := onAir(ar.Frame, sf)
			if err != nil {
				return nil, err
			}
			ar.At = append(ar.At, at)
		}
		out = append(out, ar)
	}
	return out, nil
}

func printGroupSizes(w io.Writer, rows []messages.SizeRow, air []airRow) error {
	fmt.Fprintf(w, "\nGroups (MLS RFC 9420 and MLS-Lite, docs/crypto.md):\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%5d B\t%s\n", r.Name, r.Bytes, r.Note)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nA group's 32-byte text on a LoRa link (125 kHz, CR 4/5, %d B link overhead per packet; SF7 with 255-byte packets, SF12 with 51):\n", link.DataOverhead)
	return printAirTable(w, "mode", air)
}
