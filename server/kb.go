package server

import (
	"context"
	"errors"

	"github.com/ecrae/ecrae/kbstore"
	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// kbError maps store errors to gRPC codes; field prefixes a validation
// error's path so the client sees which part of its request is wrong.
func kbError(err error, field string) error {
	if err == nil {
		return nil
	}
	var ve *kbstore.ValidationError
	switch {
	case errors.As(err, &ve):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, kbstore.ErrNotFound), errors.Is(err, kbstore.ErrNoRevision):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, kbstore.ErrExists):
		return status.Error(codes.AlreadyExists, err.Error())
	case errors.Is(err, kbstore.ErrConflict):
		return status.Error(codes.Aborted, err.Error())
	case errors.Is(err, kbstore.ErrUnavailable):
		return status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, kbstore.ErrInUse):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	}
	return status.Errorf(codes.Internal, "%s: %v", field, err)
}

// Tags.

func (s *Server) ListTags(ctx context.Context, _ *ecraev1.ListTagsRequest) (*ecraev1.ListTagsResponse, error) {
	ts, err := s.kb.ListTags(ctx)
	if err != nil {
		return nil, kbError(err, "tags")
	}
	out := &ecraev1.ListTagsResponse{}
	for _, t := range ts {
		out.Tags = append(out.Tags, tagToProto(t))
	}
	return out, nil
}

func (s *Server) GetTag(ctx context.Context, req *ecraev1.GetTagRequest) (*ecraev1.GetTagResponse, error) {
	t, err := s.kb.GetTag(ctx, req.GetName())
	if err != nil {
		return nil, kbError(err, "name")
	}
	return &ecraev1.GetTagResponse{Tag: tagToProto(t)}, nil
}

func (s *Server) CreateTag(ctx context.Context, req *ecraev1.CreateTagRequest) (*ecraev1.CreateTagResponse, error) {
	if req.GetTag() == nil {
		return nil, invalid("tag", "required")
	}
	t := tagFromProto(req.GetTag())
	if err := s.kb.CreateTag(ctx, t); err != nil {
		return nil, kbError(err, "tag")
	}
	s.log.InfoContext(ctx, "kb tag created", "tag", t.Name)
	return &ecraev1.CreateTagResponse{Tag: tagToProto(t)}, nil
}

func (s *Server) UpdateTag(ctx context.Context, req *ecraev1.UpdateTagRequest) (*ecraev1.UpdateTagResponse, error) {
	if req.GetTag() == nil {
		return nil, invalid("tag", "required")
	}
	t := tagFromProto(req.GetTag())
	if err := s.kb.UpdateTag(ctx, t); err != nil {
		return nil, kbError(err, "tag")
	}
	s.log.InfoContext(ctx, "kb tag updated", "tag", t.Name)
	return &ecraev1.UpdateTagResponse{Tag: tagToProto(t)}, nil
}

func (s *Server) DeleteTag(ctx context.Context, req *ecraev1.DeleteTagRequest) (*ecraev1.DeleteTagResponse, error) {
	if err := s.kb.DeleteTag(ctx, req.GetName()); err != nil {
		return nil, kbError(err, "name")
	}
	s.log.InfoContext(ctx, "kb tag deleted", "tag", req.GetName())
	return &ecraev1.DeleteTagResponse{}, nil
}

// Architectures.

func (s *Server) ListArchitectures(ctx context.Context, _ *ecraev1.ListArchitecturesRequest) (*ecraev1.ListArchitecturesResponse, error) {
	as, err := s.kb.ListArchitectures(ctx)
	if err != nil {
		return nil, kbError(err, "architectures")
	}
	out := &ecraev1.ListArchitecturesResponse{}
	for _, a := range as {
		out.Architectures = append(out.Architectures, archToProto(a))
	}
	return out, nil
}

func (s *Server) GetArchitecture(ctx context.Context, req *ecraev1.GetArchitectureRequest) (*ecraev1.GetArchitectureResponse, error) {
	a, err := s.kb.GetArchitecture(ctx, req.GetName())
	if err != nil {
		return nil, kbError(err, "name")
	}
	return &ecraev1.GetArchitectureResponse{Architecture: archToProto(a)}, nil
}

func (s *Server) CreateArchitecture(ctx context.Context, req *ecraev1.CreateArchitectureRequest) (*ecraev1.CreateArchitectureResponse, error) {
	if req.GetArchitecture() == nil {
		return nil, invalid("architecture", "required")
	}
	a := archFromProto(req.GetArchitecture())
	if err := s.kb.CreateArchitecture(ctx, a); err != nil {
		return nil, kbError(err, "architecture")
	}
	s.log.InfoContext(ctx, "kb architecture created", "architecture", a.Name)
	return &ecraev1.CreateArchitectureResponse{Architecture: archToProto(a)}, nil
}

func (s *Server) UpdateArchitecture(ctx context.Context, req *ecraev1.UpdateArchitectureRequest) (*ecraev1.UpdateArchitectureResponse, error) {
	if req.GetArchitecture() == nil {
		return nil, invalid("architecture", "required")
	}
	a := archFromProto(req.GetArchitecture())
	if err := s.kb.UpdateArchitecture(ctx, a); err != nil {
		return nil, kbError(err, "architecture")
	}
	s.log.InfoContext(ctx, "kb architecture updated", "architecture", a.Name)
	return &ecraev1.UpdateArchitectureResponse{Architecture: archToProto(a)}, nil
}

func (s *Server) DeleteArchitecture(ctx context.Context, req *ecraev1.DeleteArchitectureRequest) (*ecraev1.DeleteArchitectureResponse, error) {
	if err := s.kb.DeleteArchitecture(ctx, req.GetName()); err != nil {
		return nil, kbError(err, "name")
	}
	s.log.InfoContext(ctx, "kb architecture deleted", "architecture", req.GetName())
	return &ecraev1.DeleteArchitectureResponse{}, nil
}

// Flavors.

func (s *Server) ListFlavors(ctx context.Context, _ *ecraev1.ListFlavorsRequest) (*ecraev1.ListFlavorsResponse, error) {
	fs, err := s.kb.ListFlavors(ctx)
	if err != nil {
		return nil, kbError(err, "flavors")
	}
	out := &ecraev1.ListFlavorsResponse{}
	for _, f := range fs {
		out.Flavors = append(out.Flavors, flavorToProto(f))
	}
	return out, nil
}

func (s *Server) GetFlavor(ctx context.Context, req *ecraev1.GetFlavorRequest) (*ecraev1.GetFlavorResponse, error) {
	f, err := s.kb.GetFlavor(ctx, req.GetName())
	if err != nil {
		return nil, kbError(err, "name")
	}
	return &ecraev1.GetFlavorResponse{Flavor: flavorToProto(f)}, nil
}

func (s *Server) CreateFlavor(ctx context.Context, req *ecraev1.CreateFlavorRequest) (*ecraev1.CreateFlavorResponse, error) {
	if req.GetFlavor() == nil {
		return nil, invalid("flavor", "required")
	}
	f := flavorFromProto(req.GetFlavor())
	if err := s.kb.CreateFlavor(ctx, f); err != nil {
		return nil, kbError(err, "flavor")
	}
	s.log.InfoContext(ctx, "kb flavor created", "flavor", f.Name)
	return &ecraev1.CreateFlavorResponse{Flavor: flavorToProto(f)}, nil
}

func (s *Server) UpdateFlavor(ctx context.Context, req *ecraev1.UpdateFlavorRequest) (*ecraev1.UpdateFlavorResponse, error) {
	if req.GetFlavor() == nil {
		return nil, invalid("flavor", "required")
	}
	f := flavorFromProto(req.GetFlavor())
	if err := s.kb.UpdateFlavor(ctx, f); err != nil {
		return nil, kbError(err, "flavor")
	}
	s.log.InfoContext(ctx, "kb flavor updated", "flavor", f.Name)
	return &ecraev1.UpdateFlavorResponse{Flavor: flavorToProto(f)}, nil
}

func (s *Server) DeleteFlavor(ctx context.Context, req *ecraev1.DeleteFlavorRequest) (*ecraev1.DeleteFlavorResponse, error) {
	if err := s.kb.DeleteFlavor(ctx, req.GetName()); err != nil {
		return nil, kbError(err, "name")
	}
	s.log.InfoContext(ctx, "kb flavor deleted", "flavor", req.GetName())
	return &ecraev1.DeleteFlavorResponse{}, nil
}

// Hosts.

func (s *Server) ListHosts(ctx context.Context, _ *ecraev1.ListHostsRequest) (*ecraev1.ListHostsResponse, error) {
	hs, err := s.kb.ListHosts(ctx)
	if err != nil {
		return nil, kbError(err, "hosts")
	}
	out := &ecraev1.ListHostsResponse{}
	for _, h := range hs {
		out.Hosts = append(out.Hosts, hostToProto(h))
	}
	return out, nil
}

func (s *Server) GetHost(ctx context.Context, req *ecraev1.GetHostRequest) (*ecraev1.GetHostResponse, error) {
	h, err := s.kb.GetHost(ctx, req.GetName())
	if err != nil {
		return nil, kbError(err, "name")
	}
	return &ecraev1.GetHostResponse{Host: hostToProto(h)}, nil
}

func (s *Server) CreateHost(ctx context.Context, req *ecraev1.CreateHostRequest) (*ecraev1.CreateHostResponse, error) {
	if req.GetHost() == nil {
		return nil, invalid("host", "required")
	}
	h := hostFromProto(req.GetHost())
	if err := s.kb.CreateHost(ctx, h); err != nil {
		return nil, kbError(err, "host")
	}
	s.log.InfoContext(ctx, "kb host created", "host", h.Name)
	return &ecraev1.CreateHostResponse{Host: hostToProto(h)}, nil
}

func (s *Server) UpdateHost(ctx context.Context, req *ecraev1.UpdateHostRequest) (*ecraev1.UpdateHostResponse, error) {
	if req.GetHost() == nil {
		return nil, invalid("host", "required")
	}
	h := hostFromProto(req.GetHost())
	if err := s.kb.UpdateHost(ctx, h); err != nil {
		return nil, kbError(err, "host")
	}
	s.log.InfoContext(ctx, "kb host updated", "host", h.Name)
	return &ecraev1.UpdateHostResponse{Host: hostToProto(h)}, nil
}

func (s *Server) DeleteHost(ctx context.Context, req *ecraev1.DeleteHostRequest) (*ecraev1.DeleteHostResponse, error) {
	if err := s.kb.DeleteHost(ctx, req.GetName()); err != nil {
		return nil, kbError(err, "name")
	}
	s.log.InfoContext(ctx, "kb host deleted", "host", req.GetName())
	return &ecraev1.DeleteHostResponse{}, nil
}

// Whole KB.

func (s *Server) ExportKnowledgeBase(ctx context.Context, req *ecraev1.ExportKnowledgeBaseRequest) (*ecraev1.ExportKnowledgeBaseResponse, error) {
	var kb *kbstore.KB
	var err error
	if req.GetRevision() == 0 {
		kb, err = s.kb.Snapshot(ctx)
	} else {
		kb, err = s.kb.AtRevision(ctx, req.GetRevision())
	}
	if err != nil {
		return nil, kbError(err, "revision")
	}
	y, err := kbstore.EncodeYAML(kb)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "encode knowledge base: %v", err)
	}
	return &ecraev1.ExportKnowledgeBaseResponse{Yaml: string(y)}, nil
}

func (s *Server) ImportKnowledgeBase(ctx context.Context, req *ecraev1.ImportKnowledgeBaseRequest) (*ecraev1.ImportKnowledgeBaseResponse, error) {
	name := req.GetName()
	if name == "" {
		name = "yaml"
	}
	var kb *kbstore.KB
	var err error
	if req.GetReplace() {
		kb, err = kbstore.ParseYAML(name, []byte(req.GetYaml()))
	} else {
		// A merge may refer to what the KB holds already. Import checks the
		// merge again inside its transaction, so a concurrent write cannot
		// slip between this check and the commit.
		cur, serr := s.kb.Snapshot(ctx)
		if serr != nil {
			return nil, kbError(serr, "knowledge base")
		}
		kb, err = kbstore.ParseYAMLMerge(name, []byte(req.GetYaml()), cur)
	}
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	counts := &ecraev1.ImportKnowledgeBaseResponse{
		Tags: int32(len(kb.Tags)), Architectures: int32(len(kb.Architectures)),
		Flavors: int32(len(kb.Flavors)), Hosts: int32(len(kb.Hosts)),
	}
	if req.GetDryRun() {
		return counts, nil
	}
	if err := s.kb.Import(ctx, kb, req.GetReplace()); err != nil {
		return nil, kbError(err, "yaml")
	}
	if _, rev, err := s.kb.History(ctx); err == nil {
		counts.Revision = rev
	}
	s.log.InfoContext(ctx, "kb imported", "replace", req.GetReplace(), "tags", counts.Tags,
		"architectures", counts.Architectures, "flavors", counts.Flavors, "hosts", counts.Hosts, "revision", counts.Revision)
	return counts, nil
}

func (s *Server) ListKnowledgeBaseRevisions(ctx context.Context, _ *ecraev1.ListKnowledgeBaseRevisionsRequest) (*ecraev1.ListKnowledgeBaseRevisionsResponse, error) {
	hist, cur, err := s.kb.History(ctx)
	if err != nil {
		return nil, kbError(err, "knowledge base")
	}
	out := &ecraev1.ListKnowledgeBaseRevisionsResponse{Current: cur}
	for _, h := range hist {
		out.Revisions = append(out.Revisions, &ecraev1.KnowledgeBaseRevision{
			Revision: h.Revision, Until: timestamppb.New(h.Until), Change: h.Change,
			Architectures: int32(h.Architectures), Tags: int32(h.Tags), Flavors: int32(h.Flavors), Hosts: int32(h.Hosts),
		})
	}
	return out, nil
}

func (s *Server) RollbackKnowledgeBase(ctx context.Context, req *ecraev1.RollbackKnowledgeBaseRequest) (*ecraev1.RollbackKnowledgeBaseResponse, error) {
	if req.GetRevision() == 0 {
		return nil, status.Error(codes.InvalidArgument, "revision: required (see ListKnowledgeBaseRevisions)")
	}
	if err := s.kb.Rollback(ctx, req.GetRevision()); err != nil {
		return nil, kbError(err, "revision")
	}
	_, cur, err := s.kb.History(ctx)
	if err != nil {
		return nil, kbError(err, "knowledge base")
	}
	return &ecraev1.RollbackKnowledgeBaseResponse{Revision: cur}, nil
}
