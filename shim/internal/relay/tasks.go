package relay

import (
	"context"
	"fmt"
	"sync"

	taskv2 "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/isoguard/isoguard/internal/logfields"
)

// taskSet is the pod's tasks the delegate created and has not deleted yet.
type taskSet struct {
	mu  sync.Mutex
	ids map[string]bool
}

func (s *taskSet) add(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ids == nil {
		s.ids = map[string]bool{}
	}
	s.ids[id] = true
}

func (s *taskSet) remove(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.ids, id)
}

func (s *taskSet) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ids)
}

// tracked returns the handler of a Track method: relayed byte for byte, read on the way.
func (p *Proxy) tracked(method string) ttrpc.Method {
	switch method {
	case "Delete":
		return p.relayRead(method, func(raw *emptypb.Empty) func() {
			var r taskv2.DeleteRequest
			if err := reparse(raw, &r); err != nil || r.GetExecID() != "" {
				return nil // an exec's delete leaves the task in the pod
			}
			return func() { p.tasks.remove(r.GetID()) }
		})
	case "Shutdown":
		return func(ctx context.Context, unmarshal func(any) error) (any, error) {
			defer p.track()()
			req := &emptypb.Empty{}
			if err := unmarshal(req); err != nil {
				return nil, edge(fmt.Errorf("decode %s request: %v: %w", method, err, errdefs.ErrInvalidArgument))
			}
			if n := p.tasks.len(); n > 0 {
				log.G(ctx).WithField(logfields.Method, method).Debugf("%d tasks of the pod remain; the delegate keeps running", n)
				return &emptypb.Empty{}, nil
			}
			p.shutdownSent.Store(true)
			return p.call(ctx, p.delegateTask, method, req)
		}
	}
	return nil
}

// relayRead relays a request unchanged; read may look at it and return what to do once
// the delegate accepted it (nil: nothing).
func (p *Proxy) relayRead(method string, read func(*emptypb.Empty) func()) ttrpc.Method {
	return func(ctx context.Context, unmarshal func(any) error) (any, error) {
		defer p.track()()
		req := &emptypb.Empty{}
		if err := unmarshal(req); err != nil {
			return nil, edge(fmt.Errorf("decode %s request: %v: %w", method, err, errdefs.ErrInvalidArgument))
		}
		after := read(req)
		resp, err := p.call(ctx, p.delegateTask, method, req)
		if err == nil && after != nil {
			after()
		}
		return resp, err
	}
}

// reparse decodes a request relayed as Empty (its fields kept as unknown fields) into m.
func reparse(raw *emptypb.Empty, m proto.Message) error {
	return proto.Unmarshal(raw.ProtoReflect().GetUnknown(), m)
}
