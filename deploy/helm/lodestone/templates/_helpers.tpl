{{- define "lodestone.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "lodestone.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "lodestone.selectorLabels" -}}
app.kubernetes.io/name: {{ include "lodestone.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "lodestone.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "lodestone.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/*
The speaker keeps the names the single DaemonSet of earlier versions had (DaemonSet, selector, ServiceAccount), so
`helm upgrade` rolls it node by node with its hand-off instead of deleting it. The controller's pods carry another
app.kubernetes.io/name, so the DaemonSet's selector never matches them.
*/}}
{{- define "lodestone.controllerSelectorLabels" -}}
app.kubernetes.io/name: {{ include "lodestone.name" . }}-controller
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "lodestone.speakerServiceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "lodestone.fullname" .) .Values.speaker.serviceAccountName -}}
{{- else -}}
{{- default "default" .Values.speaker.serviceAccountName -}}
{{- end -}}
{{- end -}}

{{- define "lodestone.controllerServiceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (printf "%s-controller" (include "lodestone.fullname" .)) .Values.controller.serviceAccountName -}}
{{- else -}}
{{- default "default" .Values.controller.serviceAccountName -}}
{{- end -}}
{{- end -}}

{{/* The flags both workloads take from `daemon:` (after --component). */}}
{{- define "lodestone.daemonArgs" -}}
- --metrics-port={{ .Values.daemon.metricsPort }}
- --log-level={{ .Values.daemon.logLevel }}
{{- with .Values.daemon.loadBalancerClass }}
- --load-balancer-class={{ . }}
{{- end }}
- --metallb-namespace={{ .Values.daemon.metallbNamespace }}
{{- with .Values.daemon.kubeconfig }}
- --kubeconfig={{ . }}
{{- end }}
{{- end -}}

{{/* The downward API: node, namespace, pod name (the controller Lease's holder identity). */}}
{{- define "lodestone.env" -}}
- name: NODE_NAME
  valueFrom:
    fieldRef:
      fieldPath: spec.nodeName
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
{{- with .Values.daemon.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* A Kubernetes label selector in an OpenAPI v3 schema (MetalLB's CRDs select namespaces, Services, nodes, pools). */}}
{{- define "lodestone.labelSelectorSchema" -}}
type: object
properties:
  matchLabels:
    type: object
    additionalProperties:
      type: string
  matchExpressions:
    type: array
    items:
      type: object
      required: [key, operator]
      properties:
        key:
          type: string
        operator:
          type: string
        values:
          type: array
          items:
            type: string
{{- end }}
