package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/hsmsim/hsmsim/cluster"
)

type backupOpts struct {
	dir       *string
	clusterID *string
	backupID  *string
	azs       *int
}

func backupFlags(fs *flag.FlagSet) any {
	return &backupOpts{
		dir:       fs.String("dir", DefaultDir, "deployment directory"),
		clusterID: fs.String("cluster-id", "", "the cluster"),
		backupID:  fs.String("backup-id", "", "the backup (restore)"),
		azs:       fs.Int("azs", 3, "restore: availability zones of the new cluster, one HSM each"),
	}
}

func backupCommands() []*command {
	return []*command{
		{name: "backup create", summary: "take a backup of a cluster now", flags: backupFlags, run: runBackupCreate},
		{name: "backup list", summary: "list backups", flags: backupFlags, run: runBackupList},
		{name: "backup restore", summary: "create a new cluster from a backup, with its users and keys", flags: backupFlags, run: runBackupRestore},
	}
}

func runBackupCreate(ctx context.Context, e *env, o any, _ []string) error {
	opts := o.(*backupOpts)
	if *opts.clusterID == "" {
		return fmt.Errorf("%w: --cluster-id is required", errUsage)
	}
	d, err := openDeployment(*opts.dir, false, nil)
	if err != nil {
		return err
	}
	b, err := d.mgr.CreateBackup(ctx, *opts.clusterID, "on_demand")
	if err != nil {
		return err
	}
	return e.emit(b, func(w io.Writer) { fmt.Fprintf(w, "backup %s of %s created\n", b.BackupID, b.ClusterID) })
}

func runBackupList(ctx context.Context, e *env, o any, _ []string) error {
	opts := o.(*backupOpts)
	d, err := openDeployment(*opts.dir, false, nil)
	if err != nil {
		return err
	}
	bs, err := d.mgr.Backups(*opts.clusterID)
	if err != nil {
		return err
	}
	return e.emit(bs, func(w io.Writer) {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "BACKUP\tCLUSTER\tSTATE\tCREATED\tTRIGGER\tNEVER EXPIRES")
		for _, b := range bs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%v\n", b.BackupID, b.ClusterID, b.State, b.CreatedAt.Format("2006-01-02 15:04:05"), b.Trigger, b.NeverExpires)
		}
		tw.Flush()
	})
}

func runBackupRestore(ctx context.Context, e *env, o any, _ []string) error {
	opts := o.(*backupOpts)
	if *opts.backupID == "" {
		return fmt.Errorf("%w: --backup-id is required", errUsage)
	}
	if *opts.azs < 1 || *opts.azs > len(cluster.DefaultAZs) {
		return fmt.Errorf("%w: --azs must be 1 to %d", errUsage, len(cluster.DefaultAZs))
	}
	d, err := openDeployment(*opts.dir, false, nil)
	if err != nil {
		return err
	}
	azs := cluster.DefaultAZs[:*opts.azs]
	c, err := d.mgr.CreateCluster(ctx, cluster.CreateClusterInput{AZs: azs, SourceBackupID: *opts.backupID})
	if err != nil {
		return err
	}
	for _, az := range azs {
		if _, err := d.mgr.CreateHsm(ctx, c.ClusterID, az); err != nil {
			return err
		}
	}
	c, err = d.mgr.Cluster(c.ClusterID)
	if err != nil {
		return err
	}
	return e.emit(c, func(w io.Writer) {
		fmt.Fprintf(w, "cluster %s restored from %s with %d HSMs (%s)\n", c.ClusterID, *opts.backupID, len(c.Hsms), c.State)
	})
}
