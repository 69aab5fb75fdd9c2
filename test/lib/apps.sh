# shellcheck shell=bash
# apps.sh — app processes for simulated pods (source after simcluster.sh). sim_nginx runs nginx
# in a pod as the app, with its own prefix under $SIM_DIR/<pod>-nginx (logs/access.log there).

# sim_nginx POD PORT SERVER_BODY — SERVER_BODY is the inside of the server block after `listen`
# (nginx syntax; the prefix dir is $SIM_DIR/POD-nginx, with www/ and www/upload/ writable).
sim_nginx() {
    local pod=$1 port=$2 body=$3 d
    d=$SIM_DIR/$pod-nginx
    mkdir -p "$d/logs" "$d/www/upload" "$d/body" || return 1
    # nginx workers run as an unprivileged user: let them in, and write uploads.
    chmod 755 "$SIM_DIR" "$d" "$d/www" && chmod 777 "$d/www/upload" "$d/body" || return 1
    cat >"$d/nginx.conf" <<EOF
worker_processes 1;
error_log $d/logs/error.log;
pid $d/nginx.pid;
events { worker_connections 256; }
http {
  access_log $d/logs/access.log;
  client_body_temp_path $d/body;
  proxy_temp_path $d/proxy;
  fastcgi_temp_path $d/fastcgi;
  uwsgi_temp_path $d/uwsgi;
  scgi_temp_path $d/scgi;
  client_max_body_size 100m;
  server {
    listen $port;
    root $d/www;
$body
  }
}
EOF
    sim_bg "$pod" "$d/out.log" nginx -p "$d" -c "$d/nginx.conf" -g 'daemon off;' >/dev/null
}
