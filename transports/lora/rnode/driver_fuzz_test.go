package rnode

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/quicprochat/qpc/internal/clock"
)

// replayStream is a modem that says a fixed byte stream, then ends;
// whatever the driver writes is dropped.
type replayStream struct{ io.Reader }

func (replayStream) Write(p []byte) (int, error) { return len(p), nil }
func (replayStream) Close() error                { return nil }

// cannedStartup is what a well-behaved modem answers to testConfig.
func cannedStartup() []byte {
	var b []byte
	b = AppendFrame(b, CmdDetect, []byte{DetectResponse})
	b = AppendFrame(b, CmdFWVersion, []byte{1, 74})
	b = AppendFrame(b, CmdPlatform, []byte{PlatformESP32})
	b = AppendFrame(b, CmdMCU, []byte{MCUESP32})
	b = AppendFrame(b, CmdFrequency, be32(869_525_000))
	b = AppendFrame(b, CmdBandwidth, be32(125_000))
	b = AppendFrame(b, CmdTxPower, []byte{14})
	b = AppendFrame(b, CmdSF, []byte{7})
	b = AppendFrame(b, CmdCR, []byte{5})
	b = AppendFrame(b, CmdSTALock, be16(1500))
	b = AppendFrame(b, CmdLTALock, be16(1000))
	return AppendFrame(b, CmdRadioState, []byte{RadioOn})
}

// FuzzModemStream feeds the driver arbitrary modem output before and
// after a valid start-up: start-up either succeeds or fails with an
// error, never panics or hangs; after it, every packet Recv returns fits
// the limits and the stream's end is ErrDisconnected.
func FuzzModemStream(f *testing.F) {
	f.Add([]byte{}, []byte{})
	f.Add([]byte("boot\r\n"), cat(EncodeFrame(CmdStatRSSI, []byte{60}), EncodeFrame(CmdStatSNR, []byte{0xF0}), EncodeFrame(CmdData, []byte("hi"))))
	f.Add(EncodeFrame(CmdDetect, []byte{0x00}), []byte{})
	f.Add(EncodeFrame(CmdError, []byte{ErrorRadioInit}), EncodeFrame(CmdError, nil))
	f.Add([]byte{0xC0, 0x00, 0xDB}, cat(EncodeFrame(CmdReady, nil), EncodeFrame(CmdSF, nil), EncodeFrame(CmdData, nil)))
	f.Fuzz(func(t *testing.T, pre, post []byte) {
		cfg := testConfig()
		cfg.Clock = clock.NewManual(time.Unix(0, 0)) // no timer ever fires: the stream's end decides
		stream := replayStream{bytes.NewReader(cat(pre, cannedStartup(), post))}
		m, err := New(stream, cfg)
		if err != nil {
			return
		}
		defer m.Close()
		<-m.Done()
		for {
			p, err := m.Recv(context.Background())
			if err != nil {
				var me *ModemError
				if !errors.Is(err, ErrDisconnected) && !errors.As(err, &me) {
					t.Fatalf("Recv: %v", err)
				}
				if errors.Is(err, ErrDisconnected) {
					return
				}
				continue
			}
			if len(p.Data) > MaxFramePayload || p.RSSI < -RSSIOffset || p.RSSI > 255-RSSIOffset || p.SNR < -32 || p.SNR > 31.75 {
				t.Fatalf("packet out of range: %d bytes, RSSI %d, SNR %v", len(p.Data), p.RSSI, p.SNR)
			}
		}
	})
}
