# The isoguard installer image for deploy/kubernetes/isoguard.yaml: the two Windows binaries,
# install.ps1 and the default policy, on the HostProcess base image (which holds no Windows
# files: HostProcess containers run on the node's own file system). Build from the
# repository root after `make build-windows`:
#
#   docker buildx build --platform windows/amd64 -f deploy/kubernetes/installer.Dockerfile \
#     -t REGISTRY/isoguard/installer:VERSION --push .
#
# Inside the container the files are under %CONTAINER_SANDBOX_MOUNT_POINT%\isoguard.
FROM mcr.microsoft.com/oss/kubernetes/windows-host-process-containers-base-image:v1.0.0
COPY out/windows/containerd-shim-isoguard-v1.exe out/windows/isoguard.exe /isoguard/
COPY deploy/windows/install.ps1 deploy/windows/policy.yaml /isoguard/
ENV PATH="C:\Windows\system32;C:\Windows;C:\Windows\System32\WindowsPowerShell\v1.0;"
