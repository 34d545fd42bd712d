// A ttrpc client built from containerd's own ttrpc package (Debian's
// golang-github-containerd-ttrpc-dev) calling orgd. Messages are plain
// tagged structs, which gogo/protobuf marshals by reflection, so no code
// generation is needed. Usage: go-ttrpc-interop <unix socket path>
package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/containerd/ttrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

type HealthCheckRequest struct {
	Service string `protobuf:"bytes,1,opt,name=service,proto3"`
}

func (m *HealthCheckRequest) Reset()         { *m = HealthCheckRequest{} }
func (m *HealthCheckRequest) String() string { return fmt.Sprintf("%+v", *m) }
func (*HealthCheckRequest) ProtoMessage()    {}

type HealthCheckResponse struct {
	Status int32 `protobuf:"varint,1,opt,name=status,proto3"`
}

func (m *HealthCheckResponse) Reset()         { *m = HealthCheckResponse{} }
func (m *HealthCheckResponse) String() string { return fmt.Sprintf("%+v", *m) }
func (*HealthCheckResponse) ProtoMessage()    {}

type CreateOrganizationRequest struct {
	Name string `protobuf:"bytes,1,opt,name=name,proto3"`
	Type int32  `protobuf:"varint,2,opt,name=type,proto3"`
}

func (m *CreateOrganizationRequest) Reset()         { *m = CreateOrganizationRequest{} }
func (m *CreateOrganizationRequest) String() string { return fmt.Sprintf("%+v", *m) }
func (*CreateOrganizationRequest) ProtoMessage()    {}

type Organization struct {
	Id      string `protobuf:"bytes,1,opt,name=id,proto3"`
	Name    string `protobuf:"bytes,2,opt,name=name,proto3"`
	Type    int32  `protobuf:"varint,3,opt,name=type,proto3"`
	Active  bool   `protobuf:"varint,5,opt,name=active,proto3"`
	Version int64  `protobuf:"varint,8,opt,name=version,proto3"`
}

func (m *Organization) Reset()         { *m = Organization{} }
func (m *Organization) String() string { return fmt.Sprintf("%+v", *m) }
func (*Organization) ProtoMessage()    {}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "FAIL: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	conn, err := net.Dial("unix", os.Args[1])
	if err != nil {
		fail("dial: %v", err)
	}
	client := ttrpc.NewClient(conn)
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	var health HealthCheckResponse
	if err := client.Call(ctx, "grpc.health.v1.Health", "Check", &HealthCheckRequest{}, &health); err != nil {
		fail("health check: %v", err)
	}
	if health.Status != 1 {
		fail("health status %d, want 1 (SERVING)", health.Status)
	}
	fmt.Println("ok health SERVING")

	var organization Organization
	request := &CreateOrganizationRequest{Name: "Go Client Clinic", Type: 3}
	if err := client.Call(ctx, "orgd.v1.OrganizationService", "CreateOrganization", request, &organization); err != nil {
		fail("create: %v", err)
	}
	if organization.Name != "Go Client Clinic" || organization.Type != 3 || !organization.Active || organization.Version != 1 || len(organization.Id) != 36 {
		fail("created %+v", organization)
	}
	fmt.Println("ok created", organization.Id)

	err = client.Call(ctx, "orgd.v1.OrganizationService", "Nope", &HealthCheckRequest{}, &health)
	if status.Code(err) != codes.Unimplemented {
		fail("unknown method: got %v, want Unimplemented", err)
	}
	fmt.Println("ok unknown method Unimplemented")

	err = client.Call(ctx, "orgd.v1.OrganizationService", "CreateOrganization", &CreateOrganizationRequest{Type: 3}, &organization)
	if status.Code(err) != codes.InvalidArgument {
		fail("empty name: got %v, want InvalidArgument", err)
	}
	fmt.Println("ok validation InvalidArgument:", status.Convert(err).Message())
}
