{{/*
BGP mode: the FRR sidecar of the speaker pod and what it shares with the Lodestone container (docs/bgp.md).
Included by the speaker's pod template when bgp.frr.enabled.
*/}}
{{- define "lodestone.frrEnabled" -}}
{{- if and .Values.bgp.frr.enabled .Values.speaker.enabled }}true{{ end -}}
{{- end }}

{{- define "lodestone.frrArgs" -}}
{{- if include "lodestone.frrEnabled" . }}
- --frr-config=/etc/frr/frr.conf
{{- with .Values.bgp.drain }}
- --bgp-drain={{ . }}
{{- end }}
{{- end }}
{{- end }}

{{- define "lodestone.frrMounts" -}}
{{- if include "lodestone.frrEnabled" . }}
- name: frr-conf
  mountPath: /etc/frr
- name: frr-run
  mountPath: /var/run/frr
{{- end }}
{{- end }}

{{- define "lodestone.frrVolumes" -}}
{{- if include "lodestone.frrEnabled" . }}
- name: frr-conf
  emptyDir:
    sizeLimit: 64Mi
- name: frr-run
  emptyDir:
    medium: Memory
    sizeLimit: 16Mi
- name: frr-tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end }}
{{- end }}

{{- define "lodestone.frrContainer" -}}
{{- if include "lodestone.frrEnabled" . }}
- name: frr
  image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  # FRR's own init script under a shell that stays in the foreground: it writes the minimal daemons and
  # vtysh.conf files into the shared /etc/frr, starts watchfrr (which restarts a crashed daemon), ends the
  # container when watchfrr ends, and stops FRR cleanly on SIGTERM. Lodestone writes frr.conf and applies it.
  command: ["/bin/sh", "-c"]
  args:
    - |
      set -eu
      [ -f /etc/frr/daemons ] || printf 'zebra=yes\nbgpd=yes\nbfdd=yes\nvtysh_enable=yes\nzebra_options="-A 127.0.0.1 -s 90000000 -u root -g root"\nbgpd_options="-A 127.0.0.1 -u root -g root"\nbfdd_options="-A 127.0.0.1 -u root -g root"\n' >/etc/frr/daemons
      [ -f /etc/frr/vtysh.conf ] || echo "service integrated-vtysh-config" >/etc/frr/vtysh.conf
      [ -f /etc/frr/frr.conf ] || echo "frr defaults traditional" >/etc/frr/frr.conf
      /usr/lib/frr/frrinit.sh start
      trap '/usr/lib/frr/frrinit.sh stop; exit 0' TERM INT
      while kill -0 "$(cat /var/run/frr/watchfrr.pid)" 2>/dev/null; do sleep 2 & wait $!; done
      echo "watchfrr exited" >&2
      exit 1
  lifecycle:
    preStop:
      exec:
        command: ["sleep", "{{ .Values.bgp.frr.holdAfterSeconds }}"]
  {{- with .Values.bgp.frr.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    # The daemons stay root (-u root -g root): their vty sockets are then the Lodestone container's to use (it is
    # root without CAP_DAC_OVERRIDE, so an frr:frrvty 0770 socket would refuse it).
    runAsUser: 0
    allowPrivilegeEscalation: false
    readOnlyRootFilesystem: true
    capabilities:
      drop: ["ALL"]
      add:
        # bgpd listens on TCP 179 and bfdd on UDP 3784/4784: ports below 1024.
        - NET_BIND_SERVICE
        # zebra reads and writes interfaces and routes over netlink; bgpd sets TCP MD5 keys and the TTL of
        # sessions (GTSM); bfdd binds to devices.
        - NET_ADMIN
        # bfdd's echo mode and zebra's router advertisements use raw sockets.
        - NET_RAW
  volumeMounts:
    - name: frr-conf
      mountPath: /etc/frr
    - name: frr-run
      mountPath: /var/run/frr
    - name: frr-tmp
      mountPath: /var/tmp/frr
{{- end }}
{{- end }}
