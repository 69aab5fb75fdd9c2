/* Remora's version: what /server_info reports and what the xDS client tells a control plane. */
#ifndef REMORA_VERSION_H
#define REMORA_VERSION_H

#define REMORA_VERSION "0.1.0"

#endif
